import { sha256 } from '@noble/hashes/sha2.js';
import { HangarError } from '../errors.js';
import { LINK_PROTOCOL_LABEL, fingerprintToBytes, lvConcat, toHex } from './handshake.js';
import { wrapDataChannel, type DataChannelLike, type DataChannelTransport } from './datachannel-transport.js';
import type { FrameTransport } from './transport.js';

/**
 * The link over a WebRTC data channel, platform-neutral: the WebRTC library is handed in (the
 * agent and the core pass node-datachannel; shared/ imports no package but its allow-list). The
 * device always offers and the agent always answers, so two offers can never cross (no glare).
 * Candidates are gathered first and sent inside the SDP (one signal each way, not trickled): the
 * relay's signaling route answers a request with the first message back, and gathering on the
 * networks this runs on takes well under a second (5 s at most, then what was gathered goes).
 */

export interface RtcIceServer {
  hostname: string;
  port: number;
  username?: string;
  password?: string;
  relayType?: 'TurnUdp' | 'TurnTcp' | 'TurnTls';
}

export interface RtcConfigLike {
  iceServers: (string | RtcIceServer)[];
  /** Only this local address (tests: 127.0.0.1, where libjuice otherwise gathers no candidate). */
  bindAddress?: string;
  iceTransportPolicy?: 'all' | 'relay';
  enableIceTcp?: boolean;
  maxMessageSize?: number;
  disableAutoNegotiation?: boolean;
}

export interface RtcCandidateInfo {
  address: string;
  port: number;
  type: string;
  transportType: string;
}

export interface RtcDataChannelLike extends DataChannelLike {
  getLabel(): string;
  onOpen(listener: () => void): void;
}

/** The subset of node-datachannel's PeerConnection used here. */
export interface PeerConnectionLike {
  close(): void;
  setRemoteDescription(sdp: string, type: 'offer' | 'answer'): void;
  setLocalDescription(type?: 'offer' | 'answer'): void;
  addRemoteCandidate(candidate: string, mid: string): void;
  localDescription(): { type: string; sdp: string } | null;
  createDataChannel(label: string, config?: { protocol?: string; unordered?: boolean }): RtcDataChannelLike;
  onDataChannel(listener: (channel: RtcDataChannelLike) => void): void;
  onStateChange(listener: (state: string) => void): void;
  /** ICE's own state (node-datachannel reads it without a lock); absent on stand-ins. */
  iceState?(): string;
  onGatheringStateChange(listener: (state: string) => void): void;
  gatheringState(): string;
  state(): string;
  rtt(): number;
  getSelectedCandidatePair(): { local: RtcCandidateInfo; remote: RtcCandidateInfo } | null;
}

export interface RtcLibrary {
  PeerConnection: new (name: string, config: RtcConfigLike) => PeerConnectionLike;
}

/** How a WebRTC link runs: hole-punched (`p2p`) or through a TURN server (`turn`, still end-to-end encrypted). */
export type WebRtcPathKind = 'p2p' | 'turn';

export interface WebRtcPath {
  kind: WebRtcPathKind;
  /** ICE's round-trip estimate, when it has one. */
  rtt_ms: number | null;
  local: string;
  remote: string;
}

export interface WebRtcLink {
  transport: FrameTransport;
  /**
   * What the link handshake binds to in place of a TLS exporter: both DTLS certificate fingerprints
   * (device's, then agent's) from the SDP each side used. libdatachannel checks the DTLS peer against
   * the remote SDP's fingerprint, so a relay that swaps SDP makes both sides hash different values
   * and the signed handshake fails.
   */
  exporter: Uint8Array;
  path(): WebRtcPath;
  /** The transport's limitReceived (datachannel-transport.ts): the agent's pre-authentication allowance. */
  limitReceived: DataChannelTransport['limitReceived'];
}

export const WEBRTC_CHANNEL_LABEL = 'hangar-link';
const WEBRTC_CHANNEL_PROTOCOL = 'hangar-link-v1';
export const WEBRTC_GATHER_TIMEOUT_MS = 5_000;
/**
 * ICE and the channel's opening: on a LAN or through cone NATs it takes well under a second, TURN a
 * second or two. Where UDP is blocked nothing comes; the core does not wait for this verdict (it
 * starts the relay's splice beside the attempt after a head start, and closes the loser).
 */
export const WEBRTC_OPEN_TIMEOUT_MS = 5_000;

/** The one sha-256 DTLS fingerprint an SDP announces (every m-section must announce the same). */
export function sdpFingerprint(sdp: string): Uint8Array {
  const found = new Set<string>();
  for (const line of sdp.split(/\r?\n/)) {
    const match = /^a=fingerprint:sha-256 ([0-9A-Fa-f:]+)\s*$/.exec(line);
    if (match) found.add(match[1]!.toUpperCase());
  }
  if (found.size !== 1) {
    throw new HangarError(
      'E_PROTOCOL',
      found.size === 0
        ? 'the session description has no sha-256 DTLS fingerprint'
        : 'the session description announces more than one DTLS fingerprint',
    );
  }
  return fingerprintToBytes([...found][0]!);
}

/** The 32 bytes the handshake transcript carries for a WebRTC link (see WebRtcLink.exporter). */
export function webrtcExporter(deviceFingerprint: Uint8Array, agentFingerprint: Uint8Array): Uint8Array {
  return sha256(lvConcat(`${LINK_PROTOCOL_LABEL} webrtc dtls`, deviceFingerprint, agentFingerprint));
}

/**
 * ICE servers for node-datachannel from URIs (`stun:h:p`, `turn:h:p`, `turn:h:p?transport=tcp`,
 * `turns:h:p`) and the TURN credentials that go with them.
 */
export function iceServersFrom(uris: string[], credentials?: { username: string; credential: string }): RtcIceServer[] {
  const servers: RtcIceServer[] = [];
  for (const uri of uris) {
    const match = /^(stun|turns?):(\[[0-9a-fA-F:.]+\]|[^:?/\s]+)(?::(\d{1,5}))?(?:\?transport=(udp|tcp))?$/.exec(uri);
    if (!match) throw new HangarError('E_BAD_REQUEST', `"${uri}" is not a STUN or TURN URI (turn:host:3478)`);
    const [, scheme, host, port, transport] = match;
    const hostname = host!.replace(/^\[|\]$/g, '');
    if (scheme === 'stun') {
      servers.push({ hostname, port: Number(port ?? 3478) });
      continue;
    }
    servers.push({
      hostname,
      port: Number(port ?? (scheme === 'turns' ? 5349 : 3478)),
      relayType: scheme === 'turns' ? 'TurnTls' : transport === 'tcp' ? 'TurnTcp' : 'TurnUdp',
      ...(credentials ? { username: credentials.username, password: credentials.credential } : {}),
    });
  }
  return servers;
}

function describe(candidate: RtcCandidateInfo): string {
  return `${candidate.type} ${candidate.transportType} ${candidate.address}:${candidate.port}`;
}

/** `ip:port` of every relayed candidate in the SDPs (a pair through TURN may be reported as prflx or host). */
function relayedAddresses(...sdps: string[]): Set<string> {
  const found = new Set<string>();
  for (const sdp of sdps) {
    for (const m of sdp.matchAll(/^a=candidate:\S+ \d+ \S+ \d+ (\S+) (\d+) typ relay/gm)) found.add(`${m[1]}:${m[2]}`);
  }
  return found;
}

function pathOf(pc: PeerConnectionLike, relays: Set<string>): WebRtcPath {
  const pair = safe(() => pc.getSelectedCandidatePair(), null);
  const rtt = safe(() => pc.rtt(), -1);
  if (pair === null) return { kind: 'p2p', rtt_ms: rtt >= 0 ? rtt : null, local: '?', remote: '?' };
  const relayed =
    pair.local.type === 'relay' ||
    pair.remote.type === 'relay' ||
    relays.has(`${pair.local.address}:${pair.local.port}`) ||
    relays.has(`${pair.remote.address}:${pair.remote.port}`);
  return {
    kind: relayed ? 'turn' : 'p2p',
    rtt_ms: rtt >= 0 ? rtt : null,
    local: describe(pair.local),
    remote: describe(pair.remote),
  };
}

function safe<T>(read: () => T, fallback: T): T {
  try {
    return read();
  } catch {
    return fallback;
  }
}

/**
 * Peer connections in use, held here: the native side must not be collected (and closed) while a
 * signal is on its way through the relay and nothing else in JS refers to it.
 */
const live = new Set<unknown>();

/**
 * Data channels whose native side has not reported them closed yet, held here. node-datachannel
 * keeps every channel wrapper in a native list that its cleanup() walks, and takes one out only
 * when the channel's closed callback has run; a wrapper collected before that (a channel closed
 * with no onClosed listener, as on a failed attempt) leaves a dangling pointer in the list, and
 * cleanup() at exit then died with SIGSEGV in DataChannel::close(). So every channel is held until
 * its closed callback ran, and none is closed without one registered (trackChannel).
 */
const channels = new Set<RtcDataChannelLike>();

let lastClosedAt = 0;

/**
 * Peer connections and data channels this process still holds (a process calls the library's
 * cleanup only once none is, or after a bounded wait: what is held cannot be collected, so even
 * then cleanup() finds no freed channel).
 */
export function openWebRtcPeers(): number {
  return live.size + channels.size;
}

/**
 * When this process last closed a peer connection: the library's threads finish closing it after
 * close() returns, and its cleanup() must not run before they have.
 */
export function lastWebRtcPeerClosedAt(): number {
  return lastClosedAt;
}

/**
 * The channel as the rest of this module sees it: held (above) until the native side reports it
 * closed. The native closed callback is registered once, through here: when the first listener
 * comes (the transport's, after its message listener: the library delivers each kind of callback
 * through its own queue, taken in the order they were made, so a closed callback made before the
 * message one would overtake the close reason sent just before), or else just before the channel
 * is closed (a later onClosed() on a closed channel throws).
 */
function trackChannel(pc: PeerConnectionLike, native: RtcDataChannelLike): RtcDataChannelLike {
  const listeners: (() => void)[] = [];
  let registered = false;
  let closed = false;
  channels.add(native);
  const ofPeer = channelsOf.get(pc) ?? new Set<RtcDataChannelLike>();
  channelsOf.set(pc, ofPeer);
  const register = () => {
    if (registered) return;
    registered = true;
    try {
      native.onClosed(() => {
        if (closed) return;
        closed = true;
        channels.delete(native);
        ofPeer.delete(tracked);
        for (const listener of listeners.splice(0)) listener();
      });
    } catch {
      // Destroyed already: its wrapper stays held here, so it is never collected before cleanup().
    }
  };
  const tracked: RtcDataChannelLike = {
    getLabel: () => native.getLabel(),
    onOpen: (listener) => native.onOpen(listener),
    sendMessageBinary: (buffer) => native.sendMessageBinary(buffer),
    sendMessage: (text) => native.sendMessage(text),
    bufferedAmount: () => native.bufferedAmount(),
    setBufferedAmountLowThreshold: (bytes) => native.setBufferedAmountLowThreshold(bytes),
    onBufferedAmountLow: (listener) => native.onBufferedAmountLow(listener),
    onMessage: (listener) => native.onMessage(listener),
    onError: (listener) => native.onError(listener),
    isOpen: () => native.isOpen(),
    close: () => {
      register();
      native.close();
    },
    onClosed(listener) {
      if (closed) {
        queueMicrotask(listener);
        return;
      }
      listeners.push(listener);
      register();
    },
  };
  ofPeer.add(tracked);
  return tracked;
}

/** Each peer connection's channels: closing the connection alone does not report them closed. */
const channelsOf = new WeakMap<PeerConnectionLike, Set<RtcDataChannelLike>>();

/**
 * Each peer connection's state listeners: node-datachannel keeps one state callback per
 * connection (a second registration replaces the first), so it is registered once, here.
 */
const stateListeners = new WeakMap<PeerConnectionLike, Set<(state: string) => void>>();

function onState(pc: PeerConnectionLike, listener: (state: string) => void): () => void {
  let listeners = stateListeners.get(pc);
  if (!listeners) {
    const set = new Set<(state: string) => void>();
    listeners = set;
    stateListeners.set(pc, set);
    pc.onStateChange((state) => {
      for (const each of [...set]) each(state);
    });
  }
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/**
 * The device's peer connections that an attempt gave up on after ICE had connected and before
 * DTLS had: left open, not closed, until they report a state of their own. libdatachannel 0.24.5
 * (inside node-datachannel 0.33.4) can deadlock exactly there on a TURN pair, when the host's
 * DTLS ClientHello is queued as ICE connects (paullouisageneau/libdatachannel#1630; README "Known
 * issues"): two of its threads then wait on each other, one of them libjuice's poll thread holding
 * its lock. close() on that connection then waits forever (it froze hung commands' event loops),
 * and so would a new connection (its ICE agent registers with the same poll thread). From here
 * the two cannot be told apart from a handshake that is merely slow, so neither is risked: while
 * one is held here, this process opens no new WebRTC connection (webRtcPaused(); the dial goes on
 * through the relay's splice), and one that reports connected, failed or closed is closed then.
 * A deadlocked one never reports: the pause lasts until the process ends, and the process must
 * not wait for the library at exit (webRtcHoldsProcess()).
 * The agent (the DTLS client, not exposed to the deadlock) closes as always: a device that never
 * finishes its handshake must not pause a host's WebRTC for every other device.
 */
const stalled = new Set<PeerConnectionLike>();

/** The device's connections not closed yet (offerWebRtc). */
const offered = new Set<PeerConnectionLike>();

/**
 * Whether a new device connection must wait: one stalled after ICE is held (above), or one is
 * between ICE connected and DTLS done right now (where the deadlock strikes; a new connection made
 * then would wait on libjuice's stuck thread before anyone could tell). A handshake takes a few
 * round trips, so the wait is short unless it stalls.
 */
export function webRtcPaused(): boolean {
  if (webRtcHeld()) return true;
  for (const pc of offered) if (stalledAfterIce(pc)) return true;
  return false;
}

/**
 * Whether a device connection given up on after ICE connected is held (above): no new device
 * connection is made until it reports a state, which a deadlocked one never does, so waiting for
 * it is pointless (a connection merely mid-handshake, the rest of webRtcPaused, ends soon).
 */
export function webRtcHeld(): boolean {
  return stalled.size > 0;
}

/** ICE connected (so DTLS began) and the connection neither open nor ended: closing it now could wait forever. */
function stalledAfterIce(pc: PeerConnectionLike): boolean {
  const ice = safe(() => pc.iceState?.() ?? 'new', 'closed');
  const state = safe(() => pc.state(), 'closed');
  return (ice === 'connected' || ice === 'completed') && (state === 'new' || state === 'connecting');
}

function closePeer(pc: PeerConnectionLike, side: 'device' | 'agent'): void {
  if (side === 'device' && stalledAfterIce(pc)) {
    if (stalled.has(pc)) return;
    stalled.add(pc);
    onState(pc, (state) => {
      if (!stalled.has(pc) || state === 'new' || state === 'connecting') return;
      // After the other listeners of this state (the attempt's own, if it still waits).
      setTimeout(() => {
        stalled.delete(pc);
        closePeer(pc, side);
      }, 0);
    });
    return;
  }
  live.delete(pc);
  offered.delete(pc);
  lastClosedAt = Date.now();
  for (const channel of channelsOf.get(pc) ?? []) {
    try {
      channel.close(); // the channel first, then its connection
    } catch {
      // Closed already.
    }
  }
  try {
    pc.close();
  } catch {
    // Closed already.
  }
}

function gathered(pc: PeerConnectionLike, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      const local = pc.localDescription();
      if (local === null) reject(new HangarError('E_INTERNAL', 'WebRTC produced no local description'));
      else resolve(local.sdp);
    };
    // Past the deadline the candidates gathered so far go (a STUN or TURN server that does not answer).
    const timer = setTimeout(done, timeoutMs);
    pc.onGatheringStateChange((state) => {
      if (state === 'complete') done();
    });
    if (pc.gatheringState() === 'complete') done();
  });
}

/** Waits for the channel to open, or the connection to fail, or the deadline. */
function opened(
  pc: PeerConnectionLike,
  channel: Promise<RtcDataChannelLike>,
  timeoutMs: number,
): Promise<RtcDataChannelLike> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (error?: HangarError, open?: RtcDataChannelLike) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(open!);
    };
    const timer = setTimeout(
      () =>
        settle(
          new HangarError(
            'E_HOST_UNREACHABLE',
            stalledAfterIce(pc)
              ? `no WebRTC connection within ${timeoutMs} ms (ICE found a path; the DTLS handshake did not finish)`
              : `no WebRTC connection within ${timeoutMs} ms (ICE found no path)`,
          ),
        ),
      timeoutMs,
    );
    onState(pc, (state) => {
      if (state === 'failed' || state === 'closed') {
        settle(new HangarError('E_HOST_UNREACHABLE', `the WebRTC connection ${state} (ICE found no path)`));
      }
    });
    channel.then(
      (dc) => {
        if (dc.isOpen()) settle(undefined, dc);
        else dc.onOpen(() => settle(undefined, dc));
      },
      (error: HangarError) => settle(error),
    );
  });
}

/** How long a closed peer connection waits for its data channel's last message (the reason) and end. */
const PEER_REASON_GRACE_MS = 250;

function linkOver(
  side: 'device' | 'agent',
  pc: PeerConnectionLike,
  dc: RtcDataChannelLike,
  exporter: Uint8Array,
  sdps: string[],
): WebRtcLink {
  const relays = relayedAddresses(...sdps);
  const transport = wrapDataChannel(dc, {
    onClosed: () => closePeer(pc, side),
    roundTripMs: () => {
      const rtt = safe(() => pc.rtt(), -1);
      return rtt >= 0 ? rtt : null;
    },
  });
  onState(pc, (state) => {
    if (state === 'failed' || state === 'closed') {
      // The peer's reason comes as the channel's last message, on another callback than this
      // state: under load the state can come first (CI saw the reason lost). The channel's own
      // end, reason and all, is given a moment to arrive; a connection really gone ends here.
      setTimeout(
        () => transport.close({ code: 'E_HOST_UNREACHABLE', message: `the WebRTC connection ${state}` }),
        PEER_REASON_GRACE_MS,
      );
    }
  });
  return { transport, exporter, path: () => pathOf(pc, relays), limitReceived: transport.limitReceived };
}

export interface WebRtcOffer {
  /** The device's SDP with its gathered candidates: goes to the agent through the relay. */
  offer: string;
  /** Takes the agent's answer; resolves once the channel is open. */
  connect(answer: string, timeoutMs?: number): Promise<WebRtcLink>;
  abort(): void;
}

/** The device's side: a peer connection with the link's one ordered, reliable channel. */
export async function offerWebRtc(
  lib: RtcLibrary,
  config: RtcConfigLike,
  gatherTimeoutMs = WEBRTC_GATHER_TIMEOUT_MS,
): Promise<WebRtcOffer> {
  // Negotiation started by hand: the one the first channel starts by itself can race the answer.
  const pc = new lib.PeerConnection('hangar-device', { ...config, disableAutoNegotiation: true });
  live.add(pc);
  offered.add(pc);
  let dc: RtcDataChannelLike;
  let offer: string;
  try {
    dc = trackChannel(pc, pc.createDataChannel(WEBRTC_CHANNEL_LABEL, { protocol: WEBRTC_CHANNEL_PROTOCOL }));
    pc.setLocalDescription('offer');
    offer = await gathered(pc, gatherTimeoutMs);
  } catch (error) {
    closePeer(pc, 'device');
    throw error;
  }
  // Its channel too (closePeer closes a connection's channels first), unless it stalled (closePeer).
  const abort = () => closePeer(pc, 'device');
  return {
    offer,
    abort,
    async connect(answer, timeoutMs = WEBRTC_OPEN_TIMEOUT_MS) {
      try {
        const exporter = webrtcExporter(sdpFingerprint(offer), sdpFingerprint(answer));
        if (pc.state() === 'closed') {
          // Seen now and then with libdatachannel between the offer and the answer: a new exchange works.
          throw new HangarError('E_UNAVAILABLE', 'the WebRTC connection closed before the answer came; try again', {
            retry: true,
          });
        }
        pc.setRemoteDescription(answer, 'answer');
        const open = await opened(pc, Promise.resolve(dc), timeoutMs);
        return linkOver('device', pc, open, exporter, [offer, answer]);
      } catch (error) {
        abort();
        if (error instanceof HangarError) throw error;
        if (String(error).includes('without ICE transport')) {
          throw new HangarError('E_UNAVAILABLE', 'the WebRTC connection closed before the answer came; try again', {
            retry: true,
          });
        }
        throw new HangarError('E_PROTOCOL', `bad WebRTC answer: ${String(error)}`);
      }
    },
  };
}

export interface WebRtcAnswer {
  /** The agent's SDP with its gathered candidates: goes back to the device. */
  answer: string;
  /** Resolves once the device's channel is open. */
  link: Promise<WebRtcLink>;
  abort(): void;
}

/** The agent's side: answers one device's offer and waits for its channel. */
export async function answerWebRtc(
  lib: RtcLibrary,
  config: RtcConfigLike,
  offer: string,
  timeouts: { gatherMs?: number; openMs?: number; candidatesAfterMs?: number } = {},
): Promise<WebRtcAnswer> {
  const exporterFor = (answer: string) => webrtcExporter(sdpFingerprint(offer), sdpFingerprint(answer));
  sdpFingerprint(offer); // a malformed offer fails before anything is allocated
  const pc = new lib.PeerConnection('hangar-agent', config);
  live.add(pc);
  let channelSeen: RtcDataChannelLike | undefined;
  const channel = new Promise<RtcDataChannelLike>((resolve) => {
    pc.onDataChannel((received) => {
      const dc = trackChannel(pc, received);
      if (channelSeen !== undefined || dc.getLabel() !== WEBRTC_CHANNEL_LABEL) {
        dc.close(); // one link channel per connection, and nothing else
        return;
      }
      channelSeen = dc;
      resolve(dc);
    });
  });
  const abort = () => {
    try {
      channelSeen?.close();
    } catch {
      // closed
    }
    closePeer(pc, 'agent');
  };
  let answer: string;
  // The device's candidates go in once the answer is on its way: checks sent to a device that has
  // no answer yet are dropped there and retried only after a second, while the device's own checks
  // (it has the answer) arrive here at once and are answered as they come.
  const { sdp: bare, candidates, mid } = withoutCandidates(offer);
  try {
    pc.setRemoteDescription(bare, 'offer');
    answer = await gathered(pc, timeouts.gatherMs ?? WEBRTC_GATHER_TIMEOUT_MS);
    setTimeout(() => {
      for (const candidate of candidates) {
        try {
          pc.addRemoteCandidate(candidate, mid);
        } catch {
          // Closed meanwhile, or a candidate this side cannot use.
        }
      }
    }, timeouts.candidatesAfterMs ?? CANDIDATES_AFTER_MS);
  } catch (error) {
    abort();
    throw error instanceof HangarError ? error : new HangarError('E_BAD_REQUEST', `bad WebRTC offer: ${String(error)}`);
  }
  const exporter = exporterFor(answer);
  const link = opened(pc, channel, timeouts.openMs ?? WEBRTC_OPEN_TIMEOUT_MS).then(
    (open) => linkOver('agent', pc, open, exporter, [offer, answer]),
    (error: unknown) => {
      abort();
      throw error;
    },
  );
  return { answer, link, abort };
}

/** How long after answering the agent starts its own checks toward the device's candidates. */
const CANDIDATES_AFTER_MS = 150;

/** An SDP without its candidate lines (and end-of-candidates), the candidates, and the section's mid. */
function withoutCandidates(sdp: string): { sdp: string; candidates: string[]; mid: string } {
  const lines = sdp.split(/\r?\n/);
  const candidates = lines.filter((line) => line.startsWith('a=candidate:')).map((line) => line.slice(2));
  const mid = /^a=mid:(\S+)/m.exec(sdp)?.[1] ?? '0';
  const kept = lines.filter((line) => !line.startsWith('a=candidate:') && line !== 'a=end-of-candidates');
  return { sdp: kept.join('\r\n'), candidates, mid };
}

/** For logs: a short name of an SDP's fingerprint. */
export function shortFingerprint(sdp: string): string {
  try {
    return toHex(sdpFingerprint(sdp)).slice(0, 16);
  } catch {
    return '?';
  }
}
