import { Emitter } from '../disposable.js';
import { HangarError } from '../errors.js';
import { toHex, type Ed25519Signer } from '../link/handshake.js';
import type { Entitlement, UsageRecord } from '../protocol/billing.js';
import {
  RelayToAgent,
  type AgentToRelay,
  type IceConfig,
  type PresenceRecord,
  type StoredStatement,
} from '../protocol/relay.js';
import { RelaySocket, relaySocketUrl, type RelaySocketOptions } from './relay-socket.js';
import { agentLinkBytes, relayOrigin, signHex, signPresence, signedSignal } from './statements.js';

/**
 * The agent's one outbound link to the relay (`/v1/agent`): answers the relay's challenge with
 * the host key, publishes its signed presence record, catches up on statements after the
 * highest seq it has, and carries signals. Reconnects by itself (RelaySocket).
 */

export type AgentSignal = Extract<RelayToAgent, { type: 'signal' }>;
export type UsageAck = Extract<RelayToAgent, { type: 'usage.ack' }>;
export type SignalFailure = Extract<RelayToAgent, { type: 'signal.error' }>;
export type SpliceRequest = Extract<RelayToAgent, { type: 'splice' }>;

export interface RelayAgentSocketOptions extends Omit<RelaySocketOptions<RelayToAgent>, 'url' | 'incoming'> {
  /** The relay's base URL, as enrolled (http(s)://…). */
  relayUrl: string;
  hostId: string;
  signer: Ed25519Signer;
  /** The presence record to publish after each connect (and on publishPresence()). */
  presence: () => PresenceRecord;
  /** Highest statement seq already stored; statements after it are fetched on each connect. */
  statementsSeq: () => number;
}

export class RelayAgentSocket extends RelaySocket<RelayToAgent, AgentToRelay> {
  private readonly statementsEmitter = new Emitter<StoredStatement[]>();
  /** New endorsements/revocations, in seq order; the agent verifies them (never the relay). */
  readonly onStatements = this.statementsEmitter.event;
  readonly onSignal = this.messageEvent('signal', (message): AgentSignal => message);
  readonly onSignalError = this.messageEvent('signal.error', (message): SignalFailure => message);
  /** A device asks for a relayed link (PROTOCOL.md "Relayed links"); the agent dials back. */
  readonly onSplice = this.messageEvent('splice', (message): SpliceRequest => message);
  /** Each entitlement the relay pushes, checked by the agent with verifyEntitlement (never trusted as is). */
  readonly onEntitlement = this.messageEvent('entitlement', (message): Entitlement => message.entitlement);
  /** TURN servers and this host's credentials for them, after welcome and before they expire. */
  readonly onIce = this.messageEvent('ice', (message): IceConfig => message.ice);
  readonly onUsageAck = this.messageEvent('usage.ack', (message): UsageAck => message);
  private readonly origin: string;
  private welcomed = false;
  private relayEntitlementKey: string | undefined;

  constructor(private readonly agent: RelayAgentSocketOptions) {
    super({ ...agent, url: relaySocketUrl(agent.relayUrl, 'agent'), incoming: RelayToAgent });
    this.origin = relayOrigin(agent.relayUrl);
  }

  get isWelcomed(): boolean {
    return this.welcomed && this.isOpen;
  }

  protected onOpen(): void {
    this.welcomed = false; // the relay speaks first (challenge)
  }

  protected onMessage(message: RelayToAgent): void {
    switch (message.type) {
      case 'challenge': {
        if (message.relay_origin !== this.origin) {
          // A relay answering under another name: the signature would be useless there anyway.
          this.stop(
            new HangarError(
              'E_PROTOCOL',
              `the relay calls itself ${message.relay_origin}, but this host enrolled with ${this.origin}`,
            ),
          );
          return;
        }
        const signature = signHex(
          this.agent.signer,
          agentLinkBytes({ relayOrigin: this.origin, challenge: message.challenge }),
        );
        this.send({ type: 'auth', host_id: this.agent.hostId, signature });
        return;
      }
      case 'welcome':
        this.welcomed = true;
        this.relayEntitlementKey = message.entitlement_key;
        this.publishPresence();
        this.send({ type: 'statements.since', since: this.agent.statementsSeq() });
        this.setOnline();
        return;
      case 'statements':
        if (message.statements.length > 0) this.statementsEmitter.fire(message.statements);
        return;
      case 'error':
        if (message.error.code === 'E_NOT_FOUND' || message.error.code === 'E_FORBIDDEN') {
          this.stop(HangarError.from(message.error));
        }
        return;
      // The rest (signals, splices, entitlements, ICE, usage acks) are this socket's events (messageEvent).
    }
  }

  publishPresence(record: PresenceRecord = this.agent.presence()): void {
    if (!this.welcomed) return;
    this.send({ type: 'presence.update', record, signature: signPresence(this.agent.signer, record) });
  }

  /** Sends a signed signal to a device of the account (recipientKey: the device's pinned key). */
  sendSignal(f: { toDevice: string; recipientKey: string; requestId: string; payload: string }): boolean {
    if (!this.isWelcomed) return false;
    this.send({ ...signedSignal(this.agent.signer, f), to_device: f.toDevice });
    return true;
  }

  /** Sends signed usage records; the answer is a usage.ack with this batch id (onUsageAck). */
  reportUsage(batchId: string, records: UsageRecord[]): boolean {
    if (!this.isWelcomed) return false;
    this.send({ type: 'usage.report', batch_id: batchId, records });
    return true;
  }

  /** The entitlement key the relay named in its last welcome (compare with the one kept at enrollment). */
  get entitlementKey(): string | undefined {
    return this.relayEntitlementKey;
  }

  get publicKey(): string {
    return toHex(this.agent.signer.publicKey);
  }

  override dispose(): void {
    super.dispose();
    this.statementsEmitter.dispose();
  }
}
