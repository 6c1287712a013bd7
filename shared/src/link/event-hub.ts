import type { z } from 'zod';
import { Emitter, toDisposable, type Disposable } from '../disposable.js';

/** An events table (HOST_EVENTS, CORE_EVENTS): event name → the zod schema of its data. */
export type EventTable = Record<string, z.ZodType>;

/** The data a listener of `K` gets: the schema's output, so defaults are applied. */
export type EventData<E extends EventTable, K extends keyof E> = z.output<E[K]>;

/** What a publisher passes: the schema's input. */
export type EventInput<E extends EventTable, K extends keyof E> = z.input<E[K]>;

/** One event of a table, name and data together, as a discriminated union. */
export type AnyEvent<E extends EventTable> = {
  [K in keyof E & string]: { event: K; data: EventData<E, K> };
}[keyof E & string];

/**
 * Typed listeners per event name. Holds no validation itself: whoever fires has already parsed
 * the data with the table's schema (ControlClient on receive). Listeners outlive one link, so a
 * connection that reconnects keeps one hub and fires into it from each new link.
 */
export class EventHub<E extends EventTable> implements Disposable {
  private readonly emitters = new Map<string, Emitter<unknown>>();

  on<K extends keyof E & string>(event: K, listener: (data: EventData<E, K>) => void): Disposable {
    let emitter = this.emitters.get(event);
    if (!emitter) {
      emitter = new Emitter<unknown>();
      this.emitters.set(event, emitter);
    }
    const subscription = emitter.event(listener as (data: unknown) => void);
    return toDisposable(() => subscription.dispose());
  }

  fire(message: AnyEvent<E>): void {
    this.emitters.get(message.event)?.fire(message.data);
  }

  dispose(): void {
    for (const emitter of this.emitters.values()) emitter.dispose();
    this.emitters.clear();
  }
}
