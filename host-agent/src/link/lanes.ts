import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import {
  LANE_PREFACE,
  RecordReader,
  RecordType,
  deriveLaneKeys,
  sealRecord,
  type LaneKeys,
  type NativeLanes,
  type Relay,
} from '@hangar/lane';
import {
  HangarError,
  LaneHello,
  MAX_LANE_CONTROL_BYTES,
  encodeBase64url,
  toHangarError,
  type Disposable,
  type LaneGrantResult,
  type Mux,
} from '@hangar/shared';

/** Grants one link keeps at most (lane/PROTOCOL.md "Grant"): a fifth forgets the oldest. */
export const MAX_GRANTS_PER_LINK = 4;
/** Preface, grant id and HELLO arrive within this, or the connection is dropped with no answer. */
export const LANE_HELLO_TIMEOUT_MS = 5000;
/** ... and within this many bytes (preface 32 + a record of at most 4 KiB of JSON). */
export const LANE_HELLO_MAX_BYTES = 4096 + 32 + 4 + 1 + 16;
const HEADER_BYTES = 8 + 16 + 8;

/** Who a lane belongs to: the link that granted it (its device, and its mux for what it needs). */
export interface LaneLink {
  mux: Mux;
  device: string;
}

/** A lane the agent took: its socket (record 0 written both ways), its keys and where each side's seq is. */
export interface AcceptedLane {
  /** The lane's TCP socket, paused; ACCEPT is written. Hand it to the native relay (adoptSocket). */
  socket: Socket;
  keys: LaneKeys;
  /** Next seq this side sends (1: ACCEPT was 0). */
  sendSeq: bigint;
  /** Next seq expected from the client. */
  receiveSeq: bigint;
  /** Bytes read off the socket past HELLO (whole or cut records): the relay's `fromNet`. */
  leftover: Buffer;
}

/** What a purpose's handler answers for a HELLO it takes. */
export interface LaneTaken {
  /** ACCEPT's JSON (≤ 4 KiB). */
  accept: Record<string, unknown>;
  /**
   * Runs the lane once ACCEPT is on its way: adopts the socket into the native relay and returns
   * it (the acceptor closes it when the link closes). Throwing drops the lane.
   */
  run(lane: AcceptedLane): Relay;
  /** The lane went before run (the link closed, the client left): let go of what was taken. */
  abandon(): void;
}

/**
 * One purpose (LaneHello's `purpose`): takes a validated HELLO of a link, or throws the
 * HangarError the client gets as REFUSE.
 */
export type LanePurposeHandler<P extends LaneHello['purpose']> = (
  hello: Extract<LaneHello, { purpose: P }>,
  link: LaneLink,
  log: Logger,
) => Promise<LaneTaken>;

interface Grant {
  id: string;
  secret: Buffer;
  grantId: Buffer;
  link: LinkLanes;
  usedLaneNos: Set<bigint>;
}

interface LinkLanes {
  link: LaneLink;
  grants: Grant[];
  /** Lanes of this link: a socket before its relay starts, then its relay. */
  open: Set<{ close(): void }>;
  closed: boolean;
}

/**
 * The lanes beside the links (lane/PROTOCOL.md): grants per authenticated link (`lane.grant`),
 * and the acceptor for connections to the link port that start with "HGLANE/1". A connection
 * whose preface, grant or HELLO is wrong is dropped with no answer (a stranger learns nothing of
 * which grants exist); a valid HELLO its purpose refuses gets REFUSE {code, message}. Every lane
 * closes when the link that granted it closes.
 */
export class LaneAcceptor implements Disposable {
  private readonly grants = new Map<string, Grant>();
  private readonly links = new WeakMap<Mux, LinkLanes>();
  private readonly handlers = new Map<string, LanePurposeHandler<never>>();
  private readonly everyLink = new Set<LinkLanes>();

  constructor(
    private readonly log: Logger,
    /** loadNativeLanes(): without the native relay no grant is given (clients keep to mux streams). */
    readonly native: NativeLanes | { unavailable: string },
    private readonly helloTimeoutMs = LANE_HELLO_TIMEOUT_MS,
  ) {}

  /** Registers what a purpose does (one handler per purpose). */
  handle<P extends LaneHello['purpose']>(purpose: P, handler: LanePurposeHandler<P>): void {
    if (this.handlers.has(purpose)) throw new Error(`lane purpose ${purpose} has a handler already`);
    this.handlers.set(purpose, handler as unknown as LanePurposeHandler<never>);
  }

  /** `lane.grant` on a link: a new grant, kept until the link closes (at most MAX_GRANTS_PER_LINK). */
  grant(link: LaneLink): LaneGrantResult {
    if ('unavailable' in this.native) {
      throw new HangarError(
        'E_UNAVAILABLE',
        `no lanes on this host (${this.native.unavailable}); use the link's streams`,
      );
    }
    if (link.mux.closed) throw new HangarError('E_UNAVAILABLE', 'the link is closing');
    let lanes = this.links.get(link.mux);
    if (lanes === undefined) {
      const created: LinkLanes = { link, grants: [], open: new Set(), closed: false };
      lanes = created;
      this.links.set(link.mux, created);
      this.everyLink.add(created);
      link.mux.onClose(() => this.closeLink(created));
    }
    const grantId = randomBytes(16);
    const secret = randomBytes(32);
    const id = grantId.toString('hex');
    const grant: Grant = { id, secret, grantId, link: lanes, usedLaneNos: new Set() };
    lanes.grants.push(grant);
    this.grants.set(id, grant);
    while (lanes.grants.length > MAX_GRANTS_PER_LINK) this.grants.delete(lanes.grants.shift()!.id);
    return { grant_id: encodeBase64url(grantId), secret: encodeBase64url(secret) };
  }

  /**
   * A connection to the link port that started with the preface (the bytes read so far, the
   * preface among them, are `first`). The caller has admitted it as pending (PendingConnections):
   * `authenticated` lifts that once the lane's grant and HELLO checked out.
   */
  accept(socket: Socket, first: Buffer, authenticated: () => void): void {
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    // The relay writes each read as one record: small answers (an HTTP head, then its body) must
    // not wait on Nagle for the ack of the one before.
    socket.setNoDelay(true);
    let got: Buffer = first;
    /** Bytes read off the connection so far (the preface's among them). */
    let total = first.length;
    let finished = false;
    const drop = (why: string) => {
      if (finished) return;
      finished = true;
      cleanup();
      this.log.debug({ peer, why }, 'dropped a lane with no answer');
      socket.destroy();
    };
    const timer = setTimeout(() => drop('no HELLO in time'), this.helloTimeoutMs);
    const onData = (chunk: Buffer) => {
      got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
      total += chunk.length;
      step();
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
    };
    let reader: RecordReader | undefined;
    let grant: Grant | undefined;
    let laneNo = 0n;
    let keys: LaneKeys | undefined;
    /** Why a connection read on with keys nobody holds will be dropped (see below). */
    let decoy: string | undefined;
    const step = () => {
      if (finished) return;
      if (got.length > LANE_HELLO_MAX_BYTES) return drop('too many bytes before HELLO');
      if (reader === undefined) {
        if (got.length < HEADER_BYTES) {
          if (!got.subarray(0, Math.min(got.length, 8)).equals(LANE_PREFACE.subarray(0, Math.min(got.length, 8)))) {
            drop('not a lane preface');
          }
          return;
        }
        if (!got.subarray(0, 8).equals(LANE_PREFACE)) return drop('not a lane preface');
        const grantId = Buffer.from(got.subarray(8, 24));
        laneNo = got.readBigUInt64BE(24);
        const found = this.grants.get(grantId.toString('hex'));
        // A grant nobody gave, one of a closed link or a lane number said again is read on like a
        // good one, with keys nobody holds: its HELLO never opens, so it is dropped on the same
        // byte, by the same code, as a guess at a grant that exists (the stranger learns nothing).
        if (found === undefined || found.link.closed) decoy = 'no such grant';
        else if (found.usedLaneNos.has(laneNo)) decoy = 'lane number used already';
        grant = decoy === undefined ? found : undefined;
        keys = deriveLaneKeys(grant?.secret ?? randomBytes(32), grantId, laneNo, 'agent');
        reader = new RecordReader(keys.receive, 0n);
        const rest = got.subarray(HEADER_BYTES);
        got = Buffer.alloc(0);
        if (rest.length > 0) reader.push(rest);
      } else if (got.length > 0) {
        reader.push(got);
        got = Buffer.alloc(0);
      }
      let record: ReturnType<RecordReader['next']>;
      try {
        record = reader.next();
      } catch (error) {
        return drop(decoy ?? `bad record: ${(error as Error).message}`);
      }
      if (record === undefined) {
        // The reader holds a record until it is whole: a HELLO is 4 KiB at most.
        if (total > LANE_HELLO_MAX_BYTES) drop('too many bytes before HELLO');
        return;
      }
      if (record.type !== RecordType.Hello || record.payload.length > MAX_LANE_CONTROL_BYTES) {
        return drop('record 0 is not a HELLO');
      }
      // Two connections with one lane number, both past the preface: the first HELLO takes it.
      if (grant === undefined || grant.usedLaneNos.has(laneNo)) return drop(decoy ?? 'lane number used already');
      // From here the client has shown it holds the grant's secret: the lane is the link's.
      grant!.usedLaneNos.add(laneNo);
      finished = true;
      cleanup();
      authenticated();
      socket.pause();
      let parsed: unknown;
      try {
        parsed = JSON.parse(record.payload.toString('utf8'));
      } catch {
        parsed = undefined;
      }
      const hello = LaneHello.safeParse(parsed);
      void this.dispatch(socket, grant!.link, keys!, reader, hello, peer);
    };
    socket.on('data', onData);
    socket.on('error', (error) => this.log.debug({ peer, err: error.message }, 'lane socket error'));
    step();
  }

  private async dispatch(
    socket: Socket,
    lanes: LinkLanes,
    keys: LaneKeys,
    reader: RecordReader,
    hello: ReturnType<typeof LaneHello.safeParse>,
    peer: string,
  ): Promise<void> {
    const pending = { close: () => socket.destroy() };
    lanes.open.add(pending);
    socket.once('close', () => lanes.open.delete(pending));
    const refuse = (error: HangarError) => {
      lanes.open.delete(pending);
      this.log.debug({ peer, code: error.code, why: error.message }, 'lane refused');
      const payload = Buffer.from(JSON.stringify({ code: error.code, message: error.message.slice(0, 1024) }));
      socket.end(sealRecord(keys.send, 0n, RecordType.Refuse, payload));
      // A client that does not close after REFUSE is closed for.
      const linger = setTimeout(() => socket.destroy(), this.helloTimeoutMs);
      linger.unref();
      socket.once('close', () => clearTimeout(linger));
      socket.resume();
    };
    if (!hello.success) {
      const issue = hello.error.issues[0];
      refuse(
        new HangarError(
          'E_BAD_REQUEST',
          `lane HELLO: ${issue?.path.join('.') || 'the record'}: ${issue?.message ?? 'not a lane HELLO'}`,
        ),
      );
      return;
    }
    const purpose = hello.data.purpose;
    const handler = this.handlers.get(purpose) as LanePurposeHandler<typeof purpose> | undefined;
    if (handler === undefined) {
      refuse(new HangarError('E_BAD_REQUEST', `this agent takes no lanes for ${purpose}`));
      return;
    }
    let taken: LaneTaken;
    try {
      taken = await handler(hello.data as never, lanes.link, this.log);
    } catch (error) {
      refuse(toHangarError(error));
      return;
    }
    if (lanes.closed || socket.destroyed) {
      lanes.open.delete(pending);
      taken.abandon();
      socket.destroy();
      return;
    }
    const accept = Buffer.from(JSON.stringify(taken.accept));
    socket.write(sealRecord(keys.send, 0n, RecordType.Accept, accept), (error) => {
      lanes.open.delete(pending);
      if (error || lanes.closed || socket.destroyed) {
        taken.abandon();
        socket.destroy();
        return;
      }
      let relay: Relay;
      try {
        relay = taken.run({
          socket,
          keys,
          sendSeq: 1n,
          receiveSeq: reader.seq,
          leftover: reader.rest(),
        });
      } catch (runError) {
        this.log.warn({ peer, purpose, err: toHangarError(runError) }, 'lane could not start its relay');
        taken.abandon();
        socket.destroy();
        return;
      }
      const open = {
        close: () => relay.close(Buffer.from(JSON.stringify({ code: 'closed', message: 'link closed' }))),
      };
      lanes.open.add(open);
      this.log.debug({ peer, purpose, device: lanes.link.device }, 'lane opened');
      void relay.ended.then((end) => {
        lanes.open.delete(open);
        this.log.debug({ peer, purpose, how: end.how, bytes_in: end.bytesIn, bytes_out: end.bytesOut }, 'lane ended');
      });
    });
  }

  private closeLink(lanes: LinkLanes): void {
    lanes.closed = true;
    this.everyLink.delete(lanes);
    for (const grant of lanes.grants) this.grants.delete(grant.id);
    lanes.grants = [];
    const open = [...lanes.open];
    lanes.open.clear();
    if (open.length > 0)
      this.log.info({ device: lanes.link.device, lanes: open.length }, 'closing the lanes of a closed link');
    for (const lane of open) lane.close();
  }

  dispose(): void {
    for (const lanes of [...this.everyLink]) this.closeLink(lanes);
  }
}

/** Whether bytes read so far could still be, or are, a lane's preface (a TLS ClientHello starts 0x16). */
export function startsLikeLane(first: Buffer): boolean {
  const n = Math.min(first.length, LANE_PREFACE.length);
  return first.subarray(0, n).equals(LANE_PREFACE.subarray(0, n));
}
