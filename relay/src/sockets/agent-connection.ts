import { turnCredentials, turnTtlMs } from '../turn.js';
import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import {
  AgentToRelay,
  HangarError,
  RELAY_CLOSE,
  agentLinkBytes,
  toHangarError,
  verifyHex,
  verifyPresence,
  type ErrorShape,
  type RelayToAgent,
} from '@hangar/shared';
import { afterUsage } from '../api/billing.js';
import { publishHost } from '../api/hosts.js';
import type { AccountState } from '../billing/account-state.js';
import { reportUsage } from '../billing/usage.js';
import { MAX_STATEMENTS_PER_READ, statementsSince } from '../api/devices.js';
import type { RelayContext } from '../context.js';
import { Connection } from './connection.js';
import type { SocketHub } from './hub.js';
import { routeSignal } from './signaling.js';

/**
 * One agent's socket (`/v1/agent`). The relay speaks first with a fresh challenge; the agent
 * signs it with its host key (agentLinkBytes), which proves it holds the key enrolled for
 * host_id. Then the host is online until the socket closes or falls silent (hub heartbeat).
 */
export class AgentConnection extends Connection<AgentToRelay, RelayToAgent> {
  hostId = '';
  accountId = '';
  hostKey = '';
  readonly connectionId = randomBytes(16).toString('hex');
  private welcomed = false;
  /** Highest statement seq this socket has been sent; undefined until the agent asked (statements.since). */
  private sentSeq: number | undefined;
  private readonly challenge = randomBytes(32).toString('hex');
  private iceTimer: NodeJS.Timeout | undefined;
  /** When this socket was last sent an entitlement (the hub renews it every renewMs). */
  entitlementSentAt = 0;

  constructor(
    socket: WebSocket,
    ctx: RelayContext,
    hub: SocketHub,
    private readonly origin: string,
  ) {
    super(socket, AgentToRelay, ctx, hub, 'agent');
    this.serve({
      handle: (message) => this.handle(message),
      authMissing: new HangarError('E_TIMEOUT', 'no answer to the challenge in time'),
      closing: () => {
        clearTimeout(this.iceTimer);
        clearTimeout(this.laterPresenceTimer);
        return this.welcomed ? this.offline() : undefined;
      },
    });
    this.send({ type: 'challenge', challenge: this.challenge, relay_origin: origin });
  }

  get isWelcomed(): boolean {
    return this.welcomed && !this.closed;
  }

  /** The latest presence.update refused for the rate limit, applied when its timer fires. */
  private laterPresence: Extract<AgentToRelay, { type: 'presence.update' }> | undefined;
  private laterPresenceTimer: NodeJS.Timeout | undefined;

  /** Keeps `message` (replacing an older one kept back) and handles it again once the budget has room. */
  private presenceLater(message: Extract<AgentToRelay, { type: 'presence.update' }>, refused: HangarError): void {
    this.laterPresence = message;
    if (this.laterPresenceTimer !== undefined) return;
    const retryAfter = Number(refused.details?.['retry_after_ms'] ?? 0);
    this.laterPresenceTimer = setTimeout(
      () => {
        this.laterPresenceTimer = undefined;
        const later = this.laterPresence;
        this.laterPresence = undefined;
        if (later !== undefined && !this.closed) this.enqueue(() => this.handle(later));
      },
      Math.max(1_000, retryAfter),
    );
  }

  private async handle(message: AgentToRelay): Promise<void> {
    if (message.type === 'ping') return this.send({ type: 'pong' });
    if (message.type === 'pong') return;
    if (!this.welcomed) {
      if (message.type !== 'auth') {
        return this.fail(new HangarError('E_PROTOCOL', 'answer the challenge (auth) first'), RELAY_CLOSE.protocol);
      }
      return this.authenticate(message.host_id, message.signature);
    }
    switch (message.type) {
      case 'auth':
        return this.fail(new HangarError('E_PROTOCOL', 'this socket is already authenticated'), RELAY_CLOSE.protocol);
      case 'presence.update': {
        try {
          this.ctx.limits.take('presence', this.hostId, 'presence updates from this host');
        } catch (error) {
          // The socket kept, and the latest record kept back: applied once there is room (the agent
          // sends its record only when its addresses change, so one dropped would stay stale).
          const refused = toHangarError(error);
          this.send({ type: 'error', error: refused.toJSON() });
          this.presenceLater(message, refused);
          return;
        }
        // Newer than any kept back: that one is not applied after it.
        this.laterPresence = undefined;
        if (!verifyPresence(this.hostKey, message.record, message.signature)) {
          this.send({
            type: 'error',
            error: {
              code: 'E_AUTH_BAD_SIGNATURE',
              message: 'presence record signature does not verify with the host key',
            },
          });
          return;
        }
        const updated = await this.ctx.db
          .updateTable('hosts')
          .set((eb) => ({
            record_json: JSON.stringify(message.record),
            record_signature: message.signature,
            last_seen: this.ctx.now(),
            presence_version: eb('presence_version', '+', 1),
          }))
          .where('id', '=', this.hostId)
          .where('connection_id', '=', this.connectionId)
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) === 1) await publishHost(this.ctx, this.hostId);
        return;
      }
      case 'statements.since':
        this.sentSeq = message.since;
        return this.catchUp(true);
      case 'signal':
        return routeSignal(this.ctx, this.hub, { kind: 'host', connection: this }, message);
      case 'usage.report': {
        try {
          // The budget of usage.report over HTTP (per address there, per host here): each record
          // costs a signature check. Refused unanswered: the agent sends the batch again later.
          this.ctx.limits.take('usage', `host:${this.hostId}`, 'usage reports from this host');
        } catch (error) {
          this.send({ type: 'error', error: toHangarError(error).toJSON() });
          return;
        }
        const result = await reportUsage(this.ctx, this.hostId, message.records);
        this.send({ type: 'usage.ack', batch_id: message.batch_id, acked: result.acked, refused: result.refused });
        return afterUsage(this.ctx, this.accountId, result.stored);
      }
    }
  }

  /** A fresh entitlement (after the ones queued before it), from `state` when the caller computed it. */
  renewEntitlement(state?: AccountState): void {
    if (!this.isWelcomed) return;
    this.entitlementSentAt = Date.now(); // not twice from the hub's sweep while this one is queued
    this.enqueue(() => this.sendEntitlement(state));
  }

  /** TURN credentials for this host's WebRTC links, renewed at half their life while it is online. */
  private sendIce(): void {
    const turn = this.ctx.turn;
    if (turn === undefined || this.closed) return;
    this.send({ type: 'ice', ice: turnCredentials(turn, this.hostId, this.ctx.now()) });
    this.iceTimer = setTimeout(() => this.sendIce(), turnTtlMs(turn) / 2);
    this.iceTimer.unref();
  }

  private async sendEntitlement(state?: AccountState): Promise<void> {
    if (this.closed) return;
    this.entitlementSentAt = Date.now();
    this.send({
      type: 'entitlement',
      entitlement: await this.ctx.billing.entitlement(this.accountId, this.hostId, state),
    });
  }

  private async authenticate(hostId: string, signature: string): Promise<void> {
    const host = await this.ctx.db.selectFrom('hosts').selectAll().where('id', '=', hostId).executeTakeFirst();
    if (host === undefined) {
      // Removed from its account (or never enrolled here): tell the agent to stop dialing.
      return this.fail(
        new HangarError('E_NOT_FOUND', `host ${hostId} is not enrolled on this relay; enroll it again`),
        RELAY_CLOSE.revoked,
      );
    }
    if (
      !verifyHex(host.public_key, agentLinkBytes({ relayOrigin: this.origin, challenge: this.challenge }), signature)
    ) {
      return this.fail(
        new HangarError('E_AUTH_BAD_SIGNATURE', 'the challenge signature does not verify with the enrolled host key'),
        RELAY_CLOSE.authFailed,
      );
    }
    this.clearDeadline();
    if (this.closed) return;
    this.hostId = host.id;
    this.accountId = host.account_id;
    this.hostKey = host.public_key;
    this.welcomed = true;
    this.hub.addAgent(this);
    await this.ctx.db
      .updateTable('hosts')
      .set((eb) => ({
        online: 1,
        replica_id: this.ctx.replicaId,
        connection_id: this.connectionId,
        last_seen: this.ctx.now(),
        presence_version: eb('presence_version', '+', 1),
      }))
      .where('id', '=', host.id)
      .execute();
    this.send({
      type: 'welcome',
      host_id: host.id,
      account_id: host.account_id,
      heartbeat_ms: this.hub.heartbeatMs,
      dead_after_ms: this.hub.deadAfterMs,
      entitlement_key: this.ctx.billing.entitlementKey,
    });
    this.sendIce();
    await this.sendEntitlement();
    await this.ctx.bus.publish({ t: 'host.connected', host_id: host.id, connection_id: this.connectionId });
    await publishHost(this.ctx, host.id);
    this.ctx.logger.info({ host_id: host.id, account_id: host.account_id }, 'agent online');
  }

  /** The socket is gone: offline, unless a newer connection of the same host took over. */
  private async offline(): Promise<void> {
    this.hub.removeAgent(this);
    const updated = await this.ctx.db
      .updateTable('hosts')
      .set((eb) => ({ online: 0, last_seen: this.ctx.now(), presence_version: eb('presence_version', '+', 1) }))
      .where('id', '=', this.hostId)
      .where('connection_id', '=', this.connectionId)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 1) await publishHost(this.ctx, this.hostId);
    this.ctx.logger.info({ host_id: this.hostId }, 'agent offline');
  }

  /**
   * A new statement of the account was stored (on any replica). Sent by reading from the last seq
   * this socket got, in its message order: exactly once and in seq order, whether the bus event
   * comes before, during or after the agent's own catch-up, and even if a bus event was lost.
   */
  statementsStored(): void {
    if (this.sentSeq === undefined || this.closed) return; // its catch-up will include them
    this.enqueue(() => this.catchUp(false));
  }

  private async catchUp(answer: boolean): Promise<void> {
    // In pages, so that an agent offline for a long time catches up without one huge message.
    for (;;) {
      const statements = await statementsSince(this.ctx, this.accountId, this.sentSeq ?? 0);
      if (statements.length > 0 || answer) this.send({ type: 'statements', statements });
      answer = false;
      if (statements.length === 0) return;
      this.sentSeq = statements[statements.length - 1]!.seq;
      if (statements.length < MAX_STATEMENTS_PER_READ) return;
    }
  }

  protected override logFields(): Record<string, string> {
    return { host_id: this.hostId };
  }

  protected override errorMessage(error: ErrorShape): RelayToAgent {
    return { type: 'error', error };
  }
}
