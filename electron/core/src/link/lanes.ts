import { closeSync, openSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import {
  LANE_PREFACE,
  RecordReader,
  RecordType,
  deriveLaneKeys,
  laneRelayOptions,
  loadNativeLanes,
  sealRecord,
  type LaneKeys,
  type NativeLanes,
  type Relay,
  type RelayOptions,
} from '@hangar/lane';
import {
  HangarError,
  LaneAccept,
  LaneGrantResult,
  LaneRefuse,
  MAX_LANE_CONTROL_BYTES,
  decodeBase64url,
  toHangarError,
  type HostMethod,
  type HostParams,
  type HostResult,
  type LaneHello,
  type Mux,
} from '@hangar/shared';

/** `HANGAR_LANES=off`: previews (and terminals) keep to the link's mux streams. */
export const LANES_ENV = 'HANGAR_LANES';
/** A lane's TCP connect, preface, HELLO and the agent's record 0 take at most this. */
export const LANE_OPEN_TIMEOUT_MS = 5000;
/**
 * Lanes one link opens at once, at most; more wait their turn. The agent counts a lane among the
 * connections that have not authenticated until its HELLO checks out, 16 per source address at
 * most (PendingConnections): a browser's burst (wrk -c32 opens 32 at once) must not have the
 * agent drop this core's own lanes as a flood.
 */
export const MAX_OPENING_LANES = 8;

/** What openLane needs of a host connection (HostConnection). */
export interface LaneConnection {
  link(): Promise<Mux>;
  call<M extends HostMethod>(method: M, params: HostParams<M>): Promise<HostResult<M>>;
  laneTarget(mux: Mux): { host: string; port: number } | undefined;
}

/** A lane the agent accepted: hand `socket` (paused) to the native relay with these. */
export interface OpenedLane {
  socket: Socket;
  keys: LaneKeys;
  /** Next seq this side sends (1: HELLO was 0). */
  sendSeq: bigint;
  /** Next seq expected from the agent (1: ACCEPT was 0). */
  receiveSeq: bigint;
  /** Bytes read past ACCEPT (whole or cut records): the relay's `fromNet`. */
  leftover: Buffer;
  /** ACCEPT's JSON. */
  accept: LaneAccept;
}

/**
 * Why no lane was opened, when it was not the agent's REFUSE: the caller uses the mux instead.
 * (A REFUSE rejects with a HangarError of the agent's code, `details.lane === 'refused'`.)
 */
export class LaneUnavailable extends Error {
  override name = 'LaneUnavailable';
}

type GrantState =
  | {
      kind: 'granted';
      grantId: Buffer;
      secret: Buffer;
      nextLaneNo: bigint;
      target: { host: string; port: number };
      /** Lanes of this grant between their connect and the agent's answer, and those waiting for a turn. */
      opening: number;
      waiting: (() => void)[];
    }
  /** No lanes beside this link: the agent gives none, or its port cannot be reached again. */
  | { kind: 'none'; why: string };

/** Per link (a new link needs a new grant): its grant, or why it has none. */
const grants = new WeakMap<Mux, Promise<GrantState>>();

/**
 * The native relay when lanes may be used in this process: loadable (not under Electron's
 * BoringSSL, not on Windows) and not switched off with HANGAR_LANES=off; else why not.
 */
export function lanesHere(env: NodeJS.ProcessEnv = process.env): NativeLanes | { unavailable: string } {
  if (env[LANES_ENV]?.trim().toLowerCase() === 'off') return { unavailable: `${LANES_ENV}=off` };
  return loadNativeLanes();
}

/**
 * Opens a lane beside `connection`'s live link (lane/PROTOCOL.md): a grant fetched once per link,
 * a TCP connection to the address and port that link reached, preface, ids and a sealed HELLO,
 * then the agent's record 0. ACCEPT resolves; REFUSE rejects with a HangarError of its code
 * (details.lane 'refused'); anything else rejects with LaneUnavailable, and the caller goes
 * through the mux. A link whose lane port cannot be connected to (a firewall that lets the
 * link's one connection through, say) is remembered: its later lanes fail at once, until a new
 * link tries again.
 */
export async function openLane(
  connection: LaneConnection,
  hello: LaneHello,
  timeoutMs = LANE_OPEN_TIMEOUT_MS,
): Promise<OpenedLane> {
  const mux = await connection.link();
  let state = grants.get(mux);
  if (state === undefined) {
    state = fetchGrant(connection, mux);
    grants.set(mux, state);
  }
  const grant = await state;
  if (grant.kind === 'none') throw new LaneUnavailable(grant.why);
  // A lane that finishes opening hands its turn to the next waiting one, if any.
  if (grant.opening >= MAX_OPENING_LANES) await new Promise<void>((resolve) => grant.waiting.push(resolve));
  else grant.opening++;
  try {
    return await dialLane(grant, mux, state, hello, timeoutMs);
  } finally {
    const next = grant.waiting.shift();
    if (next !== undefined) next();
    else grant.opening--;
  }
}

async function dialLane(
  grant: Extract<GrantState, { kind: 'granted' }>,
  mux: Mux,
  state: Promise<GrantState>,
  hello: LaneHello,
  timeoutMs: number,
): Promise<OpenedLane> {
  const laneNo = grant.nextLaneNo++;
  const keys = deriveLaneKeys(grant.secret, grant.grantId, laneNo, 'client');
  const laneNoBytes = Buffer.alloc(8);
  laneNoBytes.writeBigUInt64BE(laneNo);
  const payload = Buffer.from(JSON.stringify(hello));
  const first = Buffer.concat([
    LANE_PREFACE,
    grant.grantId,
    laneNoBytes,
    sealRecord(keys.send, 0n, RecordType.Hello, payload),
  ]);
  const socket = connect({ host: grant.target.host, port: grant.target.port, noDelay: true });
  return new Promise<OpenedLane>((resolve, reject) => {
    const reader = new RecordReader(keys.receive, 0n);
    let connected = false;
    const fail = (error: Error) => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new LaneUnavailable(`no answer on the lane within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    const onConnect = () => {
      connected = true;
      socket.write(first);
    };
    const onError = (error: NodeJS.ErrnoException) => {
      // Refused, unreachable: the port takes the link's connection but not ours. Remembered.
      if (!connected && grants.get(mux) === state) {
        grants.set(
          mux,
          Promise.resolve({ kind: 'none', why: `lane port not reachable (${error.code ?? error.message})` }),
        );
      }
      fail(new LaneUnavailable(`lane connection failed: ${error.code ?? error.message}`));
    };
    const onClose = () => fail(new LaneUnavailable('the agent closed the lane before its answer'));
    const onData = (chunk: Buffer) => {
      reader.push(chunk);
      let record: ReturnType<RecordReader['next']>;
      try {
        record = reader.next();
      } catch (error) {
        fail(new LaneUnavailable(`the lane's answer does not open: ${(error as Error).message}`));
        return;
      }
      if (record === undefined) return;
      const parsed = parseJson(record.payload);
      if (record.type === RecordType.Refuse) {
        const refusal = LaneRefuse.safeParse(parsed);
        fail(
          refusal.success
            ? new HangarError(refusal.data.code, refusal.data.message, { lane: 'refused' })
            : new LaneUnavailable('the agent refused the lane with an answer that is not {code, message}'),
        );
        return;
      }
      const accept = LaneAccept.safeParse(parsed);
      if (record.type !== RecordType.Accept || record.payload.length > MAX_LANE_CONTROL_BYTES || !accept.success) {
        fail(new LaneUnavailable(`the lane's record 0 is not ACCEPT or REFUSE (type ${record.type})`));
        return;
      }
      cleanup();
      socket.pause();
      resolve({ socket, keys, sendSeq: 1n, receiveSeq: reader.seq, leftover: reader.rest(), accept: accept.data });
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off('data', onData);
    };
    socket.on('connect', onConnect);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('data', onData);
  });
}

async function fetchGrant(connection: LaneConnection, mux: Mux): Promise<GrantState> {
  const target = connection.laneTarget(mux);
  if (target === undefined) return { kind: 'none', why: 'the link is not a direct TCP connection' };
  try {
    const granted = LaneGrantResult.parse(await connection.call('lane.grant', {}));
    return {
      kind: 'granted',
      grantId: Buffer.from(decodeBase64url(granted.grant_id)!),
      secret: Buffer.from(decodeBase64url(granted.secret)!),
      nextLaneNo: 0n,
      target,
      opening: 0,
      waiting: [],
    };
  } catch (error) {
    // An agent without lanes (older, or no native relay there) says so once per link.
    return { kind: 'none', why: `no lane grant: ${toHangarError(error).message}` };
  }
}

function parseJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Hands an accepted lane to the native relay with a dup of `fd` as its local side (the caller keeps
 * its own `fd`): the relay writes the lane's DATA there and owns the dup and the lane's socket from
 * here. It reads `/dev/null` (EOF at once: this side sends nothing) with `readNothing`, else the
 * same dup. Undefined, with everything it took closed (the lane's socket too): no relay started,
 * and the caller goes on without the lane.
 */
export function relayLaneToFd(
  native: NativeLanes,
  lane: OpenedLane,
  fd: number,
  options: Pick<RelayOptions, 'localKind' | 'file'> & { readNothing?: boolean },
): Relay | undefined {
  let nothing: number | undefined;
  let target: number | undefined;
  let net: { fd: number; pending: Buffer } | undefined;
  try {
    if (options.readNothing) nothing = openSync('/dev/null', 'r');
    target = native.dupFd(fd);
    net = native.adoptSocket(lane.socket);
    return native.relay({
      ...laneRelayOptions(lane, net),
      localRead: nothing ?? target,
      localWrite: target,
      closeLocal: true,
      localKind: options.localKind,
      ...(options.file !== undefined ? { file: options.file } : {}),
    });
  } catch {
    if (nothing !== undefined) closeSync(nothing);
    if (target !== undefined) closeSync(target);
    if (net !== undefined) closeSync(net.fd);
    else lane.socket.destroy();
    return undefined;
  }
}
