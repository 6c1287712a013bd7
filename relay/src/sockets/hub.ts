import {
  HangarError,
  RELAY_CLOSE,
  RELAY_DEAD_AFTER_MS,
  RELAY_HEARTBEAT_MS,
  SIGNAL_TIMEOUT_MS,
  type Disposable,
  type RelayToAgent,
  type DeviceView,
  type RelayToDevice,
} from '@hangar/shared';
import { isTrusted } from '../api/call.js';
import type { BusEvent } from '../bus/bus.js';
import type { RelayContext } from '../context.js';
import type { AgentConnection } from './agent-connection.js';
import type { DeviceConnection } from './device-connection.js';

/** Who sent or receives a signal: `host:<id>` or `device:<id>`. */
export type Peer = `host:${string}` | `device:${string}`;

interface PendingSignal {
  to: Peer;
  timer: NodeJS.Timeout;
}

/** Outstanding requests one socket may have before it must wait for answers. */
const MAX_PENDING_PER_SOCKET = 64;
/**
 * Sockets one device may hold on a replica. One computer's device key is shared by its window's core
 * (one socket, for as long as the window is open) and by every `hangar` command that dials a host
 * through the relay (one each, while it runs), so a script running many commands at once opens many.
 * Past this the newest is refused (4029) and its client dials again with backoff: the window's
 * long-lived socket is never the one closed (its presence would go stale, "relay unreachable"), and
 * a client that lost track of its sockets is let in again once their heartbeats lapse.
 */
export const MAX_SOCKETS_PER_DEVICE = 32;
/** How often the heartbeat sweep runs: a dead socket is found within this of its deadline. */
const SWEEP_MS = 500;

/**
 * The sockets this replica holds, and everything addressed to them: bus events (presence,
 * statements, signals from other replicas), heartbeats (one sweep for all sockets instead of
 * a timer each) and the signaling requests its sockets are waiting on (the timeout runs on
 * the sender's replica; the answer reaches that same replica because the sender's socket is there).
 */
export class SocketHub implements Disposable {
  private readonly agents = new Map<string, AgentConnection>();
  private readonly agentsByAccount = new Map<string, Set<AgentConnection>>();
  private readonly devicesByAccount = new Map<string, Set<DeviceConnection>>();
  private readonly devicesById = new Map<string, Set<DeviceConnection>>();
  private readonly pending = new Map<string, PendingSignal>();
  /** Work of sockets that closed (marking a host offline): shutdown waits for it. */
  private readonly settling = new Set<Promise<void>>();
  private readonly subscription: Disposable;
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly ctx: RelayContext,
    readonly heartbeatMs = RELAY_HEARTBEAT_MS,
    readonly deadAfterMs = RELAY_DEAD_AFTER_MS,
    private readonly signalTimeoutMs = SIGNAL_TIMEOUT_MS,
  ) {
    this.subscription = ctx.bus.onEvent((event) => this.deliver(event));
    this.sweep = setInterval(() => this.heartbeat(), SWEEP_MS);
  }

  // ---- registry ---------------------------------------------------------------------------

  addAgent(agent: AgentConnection): void {
    const previous = this.agents.get(agent.hostId);
    if (previous !== undefined && previous !== agent)
      previous.close(RELAY_CLOSE.replaced, 'replaced by a newer connection');
    this.agents.set(agent.hostId, agent);
    addTo(this.agentsByAccount, agent.accountId, agent);
    this.ctx.metrics.agents.set(this.agents.size);
  }

  removeAgent(agent: AgentConnection): void {
    if (this.agents.get(agent.hostId) === agent) this.agents.delete(agent.hostId);
    removeFrom(this.agentsByAccount, agent.accountId, agent);
    this.dropPending(`host:${agent.hostId}`);
    this.ctx.metrics.agents.set(this.agents.size);
  }

  /** Whether a new socket of this device may join (MAX_SOCKETS_PER_DEVICE): else it is refused, the others kept. */
  hasRoomFor(deviceId: string): boolean {
    return (this.devicesById.get(deviceId)?.size ?? 0) < MAX_SOCKETS_PER_DEVICE;
  }

  /** A pending device is reachable by its id only (news of itself); a trusted one hears the account's news too. */
  addDevice(device: DeviceConnection): void {
    if (device.trusted) addTo(this.devicesByAccount, device.accountId, device);
    addTo(this.devicesById, device.deviceId, device);
    this.ctx.metrics.devices.set(this.deviceCount());
  }

  removeDevice(device: DeviceConnection): void {
    removeFrom(this.devicesByAccount, device.accountId, device);
    removeFrom(this.devicesById, device.deviceId, device);
    if (!this.devicesById.has(device.deviceId)) this.dropPending(`device:${device.deviceId}`);
    this.ctx.metrics.devices.set(this.deviceCount());
  }

  private deviceCount(): number {
    let count = 0;
    for (const set of this.devicesById.values()) count += set.size;
    return count;
  }

  // ---- delivery ---------------------------------------------------------------------------

  private deliver(event: BusEvent): void {
    switch (event.t) {
      case 'presence':
        for (const device of this.devicesByAccount.get(event.account_id) ?? [])
          device.sendPresence(event.host, event.version);
        return;
      case 'host.removed':
        for (const device of this.devicesByAccount.get(event.account_id) ?? []) {
          device.send({ type: 'host.removed', host_id: event.host_id });
        }
        this.agents
          .get(event.host_id)
          ?.fail(new HangarError('E_NOT_FOUND', 'this host was removed from its account'), RELAY_CLOSE.revoked);
        return;
      case 'host.connected': {
        const local = this.agents.get(event.host_id);
        if (local !== undefined && local.connectionId !== event.connection_id) {
          local.close(RELAY_CLOSE.replaced, 'replaced by a newer connection');
        }
        return;
      }
      case 'statements':
        for (const agent of this.agentsByAccount.get(event.account_id) ?? []) agent.statementsStored();
        return;
      case 'device.pending':
      case 'device.changed':
        for (const device of this.devicesByAccount.get(event.account_id) ?? []) {
          device.send({ type: event.t, device: event.device });
        }
        if (event.t === 'device.changed') {
          this.toDemotedSubject(event.device);
          this.toPendingSubject(event.device);
        }
        return;
      case 'device.revoked':
        for (const device of this.devicesById.get(event.device_id) ?? []) {
          device.fail(
            new HangarError('E_AUTH_DEVICE_REVOKED', event.reason ?? 'this device was revoked on its account'),
            RELAY_CLOSE.revoked,
          );
        }
        return;
      case 'session.ended':
        for (const device of this.devicesById.get(event.device_id) ?? []) {
          if (device.sessionId !== event.session_id) continue; // another login of the same device
          device.fail(
            new HangarError('E_AUTH_REQUIRED', 'this login was ended (logout or a reused refresh token); log in again'),
            RELAY_CLOSE.authFailed,
          );
        }
        return;
      case 'to_host':
        this.toLocalHost(event.host_id, event.message);
        return;
      case 'to_device':
        this.toLocalDevice(event.device_id, event.message);
        return;
      case 'billing.changed':
      case 'billing.usage':
        void this.renewEntitlements(event.account_id, event.t === 'billing.usage').catch((error: unknown) =>
          this.ctx.logger.error({ err: error, account_id: event.account_id }, 'renewing entitlements failed'),
        );
        return;
      case 'resync':
        for (const set of this.devicesById.values()) for (const device of set) void device.sendSnapshot();
        return;
    }
  }

  /**
   * A trusted device that needs approval again (the only chain that vouched for it went through a
   * revoked device: devices.ts settleTrust): from now on it hears of itself only and may not signal,
   * as a pending one. It heard this change with the account's devices, just before.
   */
  private toDemotedSubject(view: DeviceView): void {
    if (isTrusted(view)) return;
    for (const device of this.devicesById.get(view.device_id) ?? []) {
      if (!device.trusted) continue;
      device.deviceStatus = view.status;
      removeFrom(this.devicesByAccount, device.accountId, device);
    }
  }

  /** A pending device hears of itself: approved (it then gets the account's hosts) or otherwise changed. */
  private toPendingSubject(view: DeviceView): void {
    for (const device of this.devicesById.get(view.device_id) ?? []) {
      if (device.trusted) continue; // it heard it with the account's devices
      device.send({ type: 'device.changed', device: view });
      device.deviceStatus = view.status;
      if (device.trusted)
        void device
          .becameTrusted()
          .catch((error: unknown) =>
            this.ctx.logger.error(
              { err: error, device_id: view.device_id },
              'sending hosts to an approved device failed',
            ),
          );
    }
  }

  /** To the host's socket here, or through the bus to the replica that holds it. */
  async sendToHost(hostId: string, message: RelayToAgent): Promise<void> {
    if (this.toLocalHost(hostId, message)) return;
    await this.ctx.bus.publish({ t: 'to_host', host_id: hostId, message });
  }

  async sendToDevice(deviceId: string, message: RelayToDevice): Promise<void> {
    if (this.toLocalDevice(deviceId, message)) return;
    await this.ctx.bus.publish({ t: 'to_device', device_id: deviceId, message });
  }

  private toLocalHost(hostId: string, message: RelayToAgent): boolean {
    const agent = this.agents.get(hostId);
    if (agent === undefined || !agent.isWelcomed) return false;
    if (message.type === 'signal')
      this.answered(`host:${hostId}`, `device:${message.from_device.device_id}`, message.request_id);
    agent.send(message);
    return true;
  }

  private toLocalDevice(deviceId: string, message: RelayToDevice): boolean {
    const devices = this.devicesById.get(deviceId);
    if (devices === undefined || devices.size === 0) return false;
    if (message.type === 'signal')
      this.answered(`device:${deviceId}`, `host:${message.from_host.host_id}`, message.request_id);
    for (const device of devices) device.send(message);
    return true;
  }

  /**
   * The account's connected hosts here get entitlements from its state now (computed once for
   * all of them). After new minutes only a capped account's change: the others' did not.
   */
  private async renewEntitlements(accountId: string, onlyIfCapped: boolean): Promise<void> {
    const agents = this.agentsByAccount.get(accountId);
    if (agents === undefined || agents.size === 0) return;
    const state = await this.ctx.billing.state(accountId);
    if (onlyIfCapped && state.minutesLeft === null && state.refusing === null) return;
    for (const agent of agents) agent.renewEntitlement(state);
  }

  // ---- signaling requests -----------------------------------------------------------------

  /**
   * Starts the timeout of a request the first time its id is used by this sender; further
   * messages on the same id (trickled candidates) ride along. Returns false when the sender
   * already waits on too many.
   */
  track(from: Peer, to: Peer, requestId: string, onTimeout: () => void): boolean {
    const key = `${from}\u0000${requestId}`;
    if (this.pending.has(key)) return true;
    let count = 0;
    for (const pendingKey of this.pending.keys()) if (pendingKey.startsWith(`${from}\u0000`)) count++;
    if (count >= MAX_PENDING_PER_SOCKET) return false;
    const timer = setTimeout(() => {
      this.pending.delete(key);
      onTimeout();
    }, this.signalTimeoutMs);
    this.pending.set(key, { to, timer });
    return true;
  }

  /** A signal from `from` reached `to`: if `to` was waiting on `from` for this id, it is answered. */
  private answered(to: Peer, from: Peer, requestId: string): void {
    const key = `${to}\u0000${requestId}`;
    const waiting = this.pending.get(key);
    if (waiting === undefined || waiting.to !== from) return;
    clearTimeout(waiting.timer);
    this.pending.delete(key);
  }

  private dropPending(peer: Peer): void {
    for (const [key, waiting] of this.pending) {
      if (!key.startsWith(`${peer}\u0000`)) continue;
      clearTimeout(waiting.timer);
      this.pending.delete(key);
    }
  }

  // ---- heartbeats -------------------------------------------------------------------------

  private heartbeat(): void {
    const now = Date.now();
    const check = (connection: AgentConnection | DeviceConnection) => {
      if (now - connection.lastHeard > this.deadAfterMs) {
        // No close will come from a peer whose network vanished: end it here, which marks it offline.
        connection.socket.terminate();
        return;
      }
      if (now - connection.lastPing >= this.heartbeatMs) {
        connection.lastPing = now;
        connection.send({ type: 'ping' });
      }
    };
    for (const agent of this.agents.values()) {
      check(agent);
      // Renewed while online, well before the 24 h it is valid for.
      if (agent.isWelcomed && now - agent.entitlementSentAt >= this.ctx.billing.renewMs) agent.renewEntitlement();
    }
    for (const set of this.devicesById.values()) for (const device of set) check(device);
  }

  settle(work: Promise<void>): void {
    this.settling.add(work);
    void work.finally(() => this.settling.delete(work));
  }

  /** Closes every socket and waits until their hosts are marked offline (before the database closes). */
  async dispose(): Promise<void> {
    clearInterval(this.sweep);
    this.subscription.dispose();
    for (const waiting of this.pending.values()) clearTimeout(waiting.timer);
    this.pending.clear();
    const open = [...this.agents.values(), ...[...this.devicesById.values()].flatMap((set) => [...set])];
    for (const connection of open) {
      connection.fail(
        new HangarError('E_UNAVAILABLE', 'the relay is shutting down; reconnect'),
        RELAY_CLOSE.shuttingDown,
      );
      // Not waiting for the peer's close frame (up to 30 s): the socket ends now, its close runs now.
      connection.socket.terminate();
    }
    await Promise.allSettled([...open.map((connection) => connection.finished), ...this.settling]);
  }
}

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (set === undefined) map.set(key, (set = new Set()));
  set.add(value);
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}
