/** Anything that holds a process, socket, timer, file handle or subscription. */
export interface Disposable {
  dispose(): void | Promise<void>;
}

export function toDisposable(fn: () => void | Promise<void>): Disposable {
  let done = false;
  return {
    dispose: () => {
      if (done) return;
      done = true;
      return fn();
    },
  };
}

/**
 * Sees every DisposableStore made and disposed: the tests' leak check installs one and fails a
 * test file that leaves a store undisposed (VS Code's `setDisposableTracker`). Kept on globalThis
 * so that every copy of this module in a process reports to the same tracker.
 */
export interface DisposableTracker {
  created(store: Disposable): void;
  disposed(store: Disposable): void;
}

const TRACKER_KEY = Symbol.for('hangar.disposableTracker');
type TrackerHolder = { [TRACKER_KEY]?: DisposableTracker | undefined };

export function setDisposableTracker(tracker: DisposableTracker | undefined): void {
  (globalThis as TrackerHolder)[TRACKER_KEY] = tracker;
}

const tracker = (): DisposableTracker | undefined => (globalThis as TrackerHolder)[TRACKER_KEY];

/** Owns what a component starts; disposes in reverse order of adding (shutdown mirrors start). */
export class DisposableStore implements Disposable {
  private readonly items: Disposable[] = [];
  private disposed = false;

  constructor() {
    tracker()?.created(this);
  }

  add<T extends Disposable>(item: T): T {
    if (this.disposed) {
      void item.dispose();
      return item;
    }
    this.items.push(item);
    return item;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    tracker()?.disposed(this);
    const errors: unknown[] = [];
    while (this.items.length > 0) {
      const item = this.items.pop()!;
      try {
        await item.dispose();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'errors while disposing');
  }
}

/** A tiny typed event, the only listener mechanism shared code needs. */
export class Emitter<T> implements Disposable {
  private listeners = new Set<(value: T) => void>();

  readonly event = (listener: (value: T) => void): Disposable => {
    this.listeners.add(listener);
    return toDisposable(() => {
      this.listeners.delete(listener);
    });
  };

  fire(value: T): void {
    // One listener is the common case on the link's hot path (a frame, a stream's data): no copy.
    if (this.listeners.size === 1) {
      this.listeners.values().next().value!(value);
      return;
    }
    for (const listener of [...this.listeners]) listener(value);
  }

  get hasListeners(): boolean {
    return this.listeners.size > 0;
  }

  dispose(): void {
    this.listeners.clear();
  }
}
