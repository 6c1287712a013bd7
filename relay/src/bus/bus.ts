import { DeviceView, Emitter, HostPresence, RelayToAgent, RelayToDevice, type Disposable } from '@hangar/shared';
import { z } from 'zod';

/**
 * How replicas tell each other what their sockets need: presence changes, new statements,
 * signals for a socket held elsewhere. Every replica (the publisher too) receives every event
 * and delivers it to the sockets it holds. SQLite: one process, an in-memory emitter.
 * PostgreSQL: LISTEN/NOTIFY on one channel (pg-bus.ts), no extra service. What PostgreSQL hands
 * back (a NOTIFY payload or a stored body) is parsed with this schema, not cast.
 */
export const BusEvent = z.discriminatedUnion('t', [
  z.object({ t: z.literal('presence'), account_id: z.string(), version: z.number(), host: HostPresence }),
  z.object({ t: z.literal('host.removed'), account_id: z.string(), host_id: z.string() }),
  /** A host's socket opened here; replicas holding an older socket of it close theirs. */
  z.object({ t: z.literal('host.connected'), host_id: z.string(), connection_id: z.string() }),
  /** A statement was stored: agents of the account read what they have not been sent. */
  z.object({ t: z.literal('statements'), account_id: z.string() }),
  z.object({ t: z.enum(['device.pending', 'device.changed']), account_id: z.string(), device: DeviceView }),
  /** `reason`: why, in words, for the device's sockets and splices (a removed member's: no longer a member). */
  z.object({ t: z.literal('device.revoked'), device_id: z.string(), reason: z.string().max(300).optional() }),
  /** A login (refresh-token family) was ended: logout, or a spent refresh token presented again. */
  z.object({ t: z.literal('session.ended'), device_id: z.string(), session_id: z.string() }),
  z.object({ t: z.literal('to_host'), host_id: z.string(), message: RelayToAgent }),
  z.object({ t: z.literal('to_device'), device_id: z.string(), message: RelayToDevice }),
  /** An account's plan changed (a Stripe webhook): its hosts get fresh entitlements. */
  z.object({ t: z.literal('billing.changed'), account_id: z.string() }),
  /** New billed minutes were stored: the meter outbox sends them; capped accounts' hosts get new entitlements. */
  z.object({ t: z.literal('billing.usage'), account_id: z.string() }),
  /** Local only: the bus reconnected and may have missed events; sockets resend snapshots. */
  z.object({ t: z.literal('resync') }),
]);

export type BusEvent = z.infer<typeof BusEvent>;

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
