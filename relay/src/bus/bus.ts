import { Emitter, type Disposable } from '@hangar/shared';
import type { DeviceView, HostPresence, RelayToAgent, RelayToDevice } from '@hangar/shared';

/**
 * How replicas tell each other what their sockets need: presence changes, new statements,
 * signals for a socket held elsewhere. Every replica (the publisher too) receives every event
 * and delivers it to the sockets it holds. SQLite: one process, an in-memory emitter.
 * PostgreSQL: LISTEN/NOTIFY on one channel (pg-bus.ts), no extra service.
 */
export type BusEvent =
  | { t: 'presence'; account_id: string; version: number; host: HostPresence }
  | { t: 'host.removed'; account_id: string; host_id: string }
  /** A host's socket opened here; replicas holding an older socket of it close theirs. */
  | { t: 'host.connected'; host_id: string; connection_id: string }
  /** A statement was stored: agents of the account read what they have not been sent. */
  | { t: 'statements'; account_id: string }
  | { t: 'device.pending' | 'device.changed'; account_id: string; device: DeviceView }
  | { t: 'device.revoked'; device_id: string }
  | { t: 'to_host'; host_id: string; message: RelayToAgent }
  | { t: 'to_device'; device_id: string; message: RelayToDevice }
  /** An account's plan changed (a Stripe webhook): its hosts get fresh entitlements. */
  | { t: 'billing.changed'; account_id: string }
  /** New billed minutes were stored: the meter outbox sends them; capped accounts' hosts get new entitlements. */
  | { t: 'billing.usage'; account_id: string }
  /** Local only: the bus reconnected and may have missed events; sockets resend snapshots. */
  | { t: 'resync' };

export interface RelayBus extends Disposable {
  publish(event: BusEvent): Promise<void>;
  readonly onEvent: (listener: (event: BusEvent) => void) => Disposable;
}

export class MemoryBus implements RelayBus {
  private readonly emitter = new Emitter<BusEvent>();
  readonly onEvent = this.emitter.event;

  publish(event: BusEvent): Promise<void> {
    // Asynchronous like NOTIFY: a publisher never re-enters its own handlers mid-operation.
    queueMicrotask(() => this.emitter.fire(event));
    return Promise.resolve();
  }

  dispose(): void {
    this.emitter.dispose();
  }
}
