/**
 * The native relay (lane/PROTOCOL.md, "Native relay"): a C addon with one thread and libuv loop of
 * its own that joins a lane's socket to a local fd, sealing and opening records with OpenSSL's
 * AES-256-GCM. This file is its typed face: options are checked here (zod) before they reach C.
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import type { Socket } from 'node:net';
import { z } from 'zod';
import { LaneError, MAX_CONTROL_PAYLOAD, type LaneKeys } from './records.js';

export interface RelayOptions {
  /** The lane's socket fd; the relay owns it (closes it at the end). */
  net: number;
  /** The plain side: a socket or pty master (the same fd for both), or stdin ... */
  localRead: number;
  /** ... and stdout. */
  localWrite: number;
  /** Close localRead/localWrite at the end (false for stdin/stdout). */
  closeLocal: boolean;
  keys: LaneKeys;
  /** The seq of the next record this side sends. */
  sendSeq: bigint;
  /** The seq of the next record expected from `net`. */
  receiveSeq: bigint;
  /** Bytes already read off `net` (whole or cut records). */
  fromNet?: Uint8Array;
  /** Plaintext sent first (as DATA), before anything read locally. */
  toNet?: Uint8Array;
  /** Written to localWrite first. */
  toLocal?: Uint8Array;
  /** Do not read `net` until release('net'). */
  holdNet?: boolean;
  /** Do not read localRead until release('local'). */
  holdLocal?: boolean;
  /** 0-255: reading localRead stops at this byte (the bytes before it are sent); onDetach fires; output keeps flowing. */
  detachByte?: number;
  onDetach?: () => void;
  /**
   * socket: EOF both ways is a half-close (shutdown(SHUT_WR) on the local socket at a net EOF);
   * pty: EIO on read is EOF; terminal: stdin's EOF sends EOF, a net EOF just stops writing;
   * file: localRead is a regular file sent from `file.offset` up to `file.limit` (pread: the fd's
   * own offset is left alone), then EOF; a file shorter than that ends as an error (`truncated:`),
   * never as EOF. The lane's DATA is written to localWrite (a file opened for append, say), at most
   * `file.receiveLimit` bytes of it: a peer that sends more ends the lane as an error (`too_big:`).
   */
  localKind: 'socket' | 'pty' | 'terminal' | 'file';
  /**
   * For localKind 'file' (required there): which bytes of localRead go out, and how many of the
   * peer's are taken at most (no limit without receiveLimit). `growing`: the file is still being
   * written (a job's log): at `limit` the relay waits for `fileLimit()` to move it, and sends EOF
   * only after a final one. `sha256`: the relay hashes what localWrite holds, first its `prefix`
   * bytes already there (read back with pread: localWrite open for reading too, 'a+'), then each
   * DATA payload as it takes it for writing; an 'eof' end carries the hex digest of them all.
   */
  file?: { offset: number; limit: number; receiveLimit?: number; growing?: boolean; sha256?: { prefix: number } };
}

export interface Relay {
  /** Starts reading a side held with holdNet/holdLocal. */
  release(side: 'net' | 'local'): void;
  /** Sent as DATA after what is queued (keys that reached JS before the hand-over). */
  write(plain: Uint8Array): void;
  /**
   * After everything queued: CLOSE(reason) (≤ 4 KiB), then the lane closes; `ended` is 'closed_here'.
   * From here the peer's DATA is dropped, and the lane ends within 5 s whatever the peer does (one
   * that reads nothing, so CLOSE cannot go out, ends as an error).
   */
  close(reason?: Uint8Array): void;
  /**
   * A growing `file` relay: its limit moves forward to `limit` (never back: a smaller one is
   * ignored); `final`: it moves no more, and EOF follows the bytes up to it. Ignored once final.
   */
  fileLimit(limit: number, final: boolean): void;
  /** Settles once, never rejects. */
  readonly ended: Promise<RelayEnd>;
}

/** bytesIn: DATA bytes that came off the lane and were written locally; bytesOut: DATA bytes sent on it. */
export type RelayEnd =
  | { how: 'closed'; reason: Buffer; bytesIn: number; bytesOut: number }
  | { how: 'closed_here'; bytesIn: number; bytesOut: number }
  | { how: 'eof'; bytesIn: number; bytesOut: number; /** With file.sha256. */ sha256?: string }
  | { how: 'error'; message: string; bytesIn: number; bytesOut: number };

export type NativeLanes = {
  /**
   * Takes a connected net.Socket's descriptor: returns a dup of it and anything Node had already
   * read into the socket's buffers, then destroys the Node socket without sending anything (no
   * FIN, no RST: the dup keeps the connection). Throws on Windows / a socket with no fd.
   */
  adoptSocket(socket: Socket): { fd: number; pending: Buffer };
  /** dup(2), close-on-exec set. */
  dupFd(fd: number): number;
  /**
   * Up to `max` (1-64) bytes a socket has received, left on it (recv with MSG_PEEK): empty if
   * nothing has come yet, null once the peer has closed. For a socket Node is not reading
   * (`pauseOnConnect`), to decide who reads it.
   */
  peek(fd: number, max: number): Buffer | null;
  relay(options: RelayOptions): Relay;
  /**
   * Thread `tid` (default 0: the calling thread; a pid: that process's main thread) of this user
   * gets the 0.1 ms slice of a keystroke's path (relay.c, INTERACTIVE_SLICE_NS): woken, it runs at
   * once instead of after the running thread's slice. Its nice stays, what it starts begins with
   * the default. Only for threads of ours that carry keys and echoes, never a user's program.
   * Undefined, or why not (the errno's name: EPERM for a policy other than SCHED_OTHER, ESRCH;
   * ENOSYS off Linux, where it changes nothing).
   */
  preferLatency(tid?: number): string | undefined;
};

/** What lane.node exports (lane/src/native/addon.c). */
interface Addon {
  /** LANE_ADDON_VERSION (absent in an addon built before it was exported). */
  version?: number;
  dupFd(fd: number): number;
  peek(fd: number, max: number): Buffer | null;
  relay(options: AddonRelayOptions, onEvent: (event: AddonEvent) => void): number;
  release(id: number, side: 0 | 1): void;
  write(id: number, plain: Buffer): void;
  close(id: number, reason: Buffer): void;
  fileLimit(id: number, limit: bigint, final: boolean): void;
  preferLatency(tid: number): number;
}
interface AddonRelayOptions {
  net: number;
  localRead: number;
  localWrite: number;
  closeLocal: boolean;
  kind: 0 | 1 | 2 | 3;
  sendKey: Buffer;
  receiveKey: Buffer;
  sendSeq: bigint;
  receiveSeq: bigint;
  fromNet: Buffer | undefined;
  toNet: Buffer | undefined;
  toLocal: Buffer | undefined;
  holdNet: boolean;
  holdLocal: boolean;
  detachByte: number;
  fileOffset: bigint;
  fileLimit: bigint;
  fileReceiveLimit: bigint;
  fileGrowing: boolean;
  fileSha256: boolean;
  fileHashPrefix: bigint;
}
type AddonEvent =
  | { event: 'detach' }
  | {
      event: 'end';
      how: RelayEnd['how'];
      reason?: Buffer;
      message?: string;
      sha256?: string;
      bytesIn: number;
      bytesOut: number;
    };

const KINDS = { socket: 0, pty: 1, terminal: 2, file: 3 } as const;
const MAX_SEQ = (1n << 64n) - 1n;

const fd = z.number().int().min(0).max(0x7fffffff);
const key = z.instanceof(Uint8Array).refine((bytes) => bytes.length === 32, 'must be 32 bytes');
const seq = z.bigint().min(0n).max(MAX_SEQ);
const bytes = z.instanceof(Uint8Array).optional();
const RelayOptionsSchema = z.object({
  net: fd,
  localRead: fd,
  localWrite: fd,
  closeLocal: z.boolean(),
  keys: z.object({ send: key, receive: key }),
  sendSeq: seq,
  receiveSeq: seq,
  fromNet: bytes,
  toNet: bytes,
  toLocal: bytes,
  holdNet: z.boolean().optional(),
  holdLocal: z.boolean().optional(),
  detachByte: z.number().int().min(0).max(255).optional(),
  onDetach: z.function().optional(),
  localKind: z.enum(['socket', 'pty', 'terminal', 'file']),
  file: z
    .object({
      offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
      limit: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
      receiveLimit: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
      growing: z.boolean().optional(),
      sha256: z.object({ prefix: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER) }).optional(),
    })
    .refine((file) => file.offset <= file.limit, 'offset must be ≤ limit')
    .optional(),
});

function checkOptions(options: RelayOptions): void {
  const parsed = RelayOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new LaneError('bad_options', `RelayOptions.${issue.path.join('.') || '(options)'}: ${issue.message}`);
  }
  if ((options.localKind === 'file') !== (options.file !== undefined)) {
    throw new LaneError('bad_options', "RelayOptions.file: given with localKind 'file', and only then");
  }
}

const copy = (data: Uint8Array | undefined) => (data && data.length > 0 ? Buffer.from(data) : undefined);

function wrap(addon: Addon): NativeLanes {
  return {
    dupFd(descriptor) {
      const parsed = fd.safeParse(descriptor);
      if (!parsed.success) throw new LaneError('bad_options', `dupFd: fd must be an integer ≥ 0, got ${descriptor}`);
      return addon.dupFd(descriptor);
    },
    preferLatency(tid = 0) {
      if (!fd.safeParse(tid).success)
        throw new LaneError('bad_options', `preferLatency: tid must be an integer ≥ 0, got ${tid}`);
      const rc = addon.preferLatency(tid);
      if (rc === 0) return undefined;
      return Object.entries(constants.errno).find(([, n]) => n === -rc)?.[0] ?? `errno ${-rc}`;
    },
    peek(descriptor, max) {
      if (!fd.safeParse(descriptor).success)
        throw new LaneError('bad_options', `peek: fd must be an integer ≥ 0, got ${descriptor}`);
      if (!Number.isInteger(max) || max < 1 || max > 64)
        throw new LaneError('bad_options', `peek: max must be 1-64, got ${max}`);
      return addon.peek(descriptor, max);
    },
    adoptSocket(socket) {
      if (process.platform === 'win32') throw new LaneError('unavailable', 'lanes need POSIX file descriptors');
      const handle = (socket as unknown as { _handle?: { fd?: number } | null })._handle;
      const descriptor = handle?.fd;
      if (typeof descriptor !== 'number' || descriptor < 0) {
        throw new LaneError('bad_options', 'adoptSocket: the socket has no file descriptor (not connected, or closed)');
      }
      const dup = addon.dupFd(descriptor);
      // Whatever libuv read and Node has not handed out yet; anything still in the kernel stays
      // there for the dup. Nothing else runs between this and destroy(): it is all synchronous.
      socket.pause();
      const pending: Buffer[] = [];
      for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
        pending.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      }
      socket.removeAllListeners('data');
      // destroy() closes Node's descriptor only: no shutdown, no linger, so the connection lives on in the dup.
      socket.destroy();
      return { fd: dup, pending: Buffer.concat(pending) };
    },
    relay(options) {
      checkOptions(options);
      let settle!: (end: RelayEnd) => void;
      const ended = new Promise<RelayEnd>((resolve) => (settle = resolve));
      let done = false;
      const onEvent = (event: AddonEvent) => {
        if (event.event === 'detach') {
          options.onDetach?.();
          return;
        }
        if (done) return;
        done = true;
        const counts = { bytesIn: event.bytesIn, bytesOut: event.bytesOut };
        if (event.how === 'closed') settle({ how: 'closed', reason: event.reason ?? Buffer.alloc(0), ...counts });
        else if (event.how === 'error') settle({ how: 'error', message: event.message ?? 'relay failed', ...counts });
        else if (event.how === 'eof' && event.sha256 !== undefined)
          settle({ how: 'eof', ...counts, sha256: event.sha256 });
        else settle({ how: event.how, ...counts });
      };
      // Copies the addon reads once; zeroed right after, so no copy of a key outlives the call here.
      const sendKey = Buffer.from(options.keys.send);
      const receiveKey = Buffer.from(options.keys.receive);
      let id: number;
      try {
        id = addon.relay(
          {
            net: options.net,
            localRead: options.localRead,
            localWrite: options.localWrite,
            closeLocal: options.closeLocal,
            kind: KINDS[options.localKind],
            sendKey,
            receiveKey,
            sendSeq: options.sendSeq,
            receiveSeq: options.receiveSeq,
            fromNet: copy(options.fromNet),
            toNet: copy(options.toNet),
            toLocal: copy(options.toLocal),
            holdNet: options.holdNet ?? false,
            holdLocal: options.holdLocal ?? false,
            detachByte: options.detachByte ?? -1,
            fileOffset: BigInt(options.file?.offset ?? 0),
            fileLimit: BigInt(options.file?.limit ?? 0),
            fileReceiveLimit: options.file?.receiveLimit === undefined ? MAX_SEQ : BigInt(options.file.receiveLimit),
            fileGrowing: options.file?.growing ?? false,
            fileSha256: options.file?.sha256 !== undefined,
            fileHashPrefix: BigInt(options.file?.sha256?.prefix ?? 0),
          },
          onEvent,
        );
      } finally {
        sendKey.fill(0);
        receiveKey.fill(0);
      }
      return {
        ended,
        release(side) {
          if (side !== 'net' && side !== 'local')
            throw new LaneError('bad_options', `release: side must be 'net' or 'local'`);
          addon.release(id, side === 'net' ? 0 : 1);
        },
        write(plain) {
          if (!(plain instanceof Uint8Array)) throw new LaneError('bad_options', 'write: takes a Uint8Array');
          if (plain.length > 0) addon.write(id, Buffer.from(plain));
        },
        close(reason) {
          if (reason !== undefined && !(reason instanceof Uint8Array)) {
            throw new LaneError('bad_options', 'close: the reason is a Uint8Array (UTF-8 JSON)');
          }
          if (reason && reason.length > MAX_CONTROL_PAYLOAD) {
            throw new LaneError(
              'too_big',
              `close: a reason is at most ${MAX_CONTROL_PAYLOAD} bytes, got ${reason.length}`,
            );
          }
          addon.close(id, Buffer.from(reason ?? new Uint8Array(0)));
        },
        fileLimit(limit, final) {
          if (!Number.isSafeInteger(limit) || limit < 0) {
            throw new LaneError('bad_options', `fileLimit: limit must be an integer ≥ 0, got ${limit}`);
          }
          if (typeof final !== 'boolean') throw new LaneError('bad_options', 'fileLimit: final must be a boolean');
          addon.fileLimit(id, BigInt(limit), final);
        },
      };
    },
  };
}

/** lane/build/Release/lane.node, the same relative path from src/ (vitest) and dist/ (built). */
const ADDON_PATH = '../build/Release/lane.node';
/**
 * The LANE_ADDON_VERSION of addon.c this JavaScript was written against: another (an addon built
 * from older or newer code, the checkout pulled without `npm rebuild`) turns lanes off.
 */
const ADDON_VERSION = 1;
let loaded: NativeLanes | { unavailable: string } | undefined;

/**
 * The native relay, or why it cannot run here (not built, Windows, Electron's BoringSSL): loaded
 * once and cached; never throws. Callers fall back to the mux stream on `unavailable`.
 */
export function loadNativeLanes(): NativeLanes | { unavailable: string } {
  if (loaded) return loaded;
  loaded = load();
  return loaded;
}

function load(): NativeLanes | { unavailable: string } {
  if (process.platform === 'win32') return { unavailable: 'lanes need POSIX file descriptors (not on Windows)' };
  if (process.versions.electron !== undefined) {
    return { unavailable: "Electron's BoringSSL has no EVP AES-256-GCM build of this addon" };
  }
  let addon: Addon;
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return {
      unavailable:
        `lane.node did not load (${message}); build it with \`npx node-gyp rebuild\` where its binding.gyp is ` +
        '(lane/ of a checkout, which `npm ci` builds; the folder of the installed hangar-agent package)',
    };
  }
  if (addon.version !== ADDON_VERSION) {
    const unavailable =
      `lane.node was built from other code than this JavaScript (addon version ${addon.version ?? 'none'}, ` +
      `expected ${ADDON_VERSION}): lanes are off until it is rebuilt: npm rebuild @hangar/lane ` +
      '(in the checkout; for an installed hangar-agent, `npx node-gyp rebuild` in its folder)';
    // Once per process (loadNativeLanes caches the answer): the bytes still go, on the link's streams.
    process.emitWarning(unavailable, { code: 'HANGAR_LANE_ADDON_VERSION' });
    return { unavailable };
  }
  return wrap(addon);
}

/** A lane the agent accepted, as either end holds it once HELLO/ACCEPT are done. */
export interface AcceptedLane {
  keys: LaneKeys;
  sendSeq: bigint;
  receiveSeq: bigint;
  /** Bytes read past the handshake's record (the start of what the relay opens next). */
  leftover: Buffer;
}

/**
 * The options every relay of an accepted lane starts with: the lane's socket (as `adoptSocket`
 * took it), its keys and sequence numbers, and what the relay opens first (the bytes read past the
 * handshake, then what Node had read off the socket). The caller adds its local side.
 */
export function laneRelayOptions(
  lane: AcceptedLane,
  net: { fd: number; pending: Buffer },
): Pick<RelayOptions, 'net' | 'keys' | 'sendSeq' | 'receiveSeq' | 'fromNet'> {
  const fromNet = net.pending.length > 0 ? Buffer.concat([lane.leftover, net.pending]) : lane.leftover;
  return {
    net: net.fd,
    keys: lane.keys,
    sendSeq: lane.sendSeq,
    receiveSeq: lane.receiveSeq,
    ...(fromNet.length > 0 ? { fromNet } : {}),
  };
}

/**
 * Joins two sockets `adoptSocket` took: the lane's (`net`) and a plain TCP one (`local`: the
 * browser's in the core, the dev server's on the host), half-closes carried both ways. `toNet`
 * goes first (default: what Node had read off the local socket).
 */
export function relaySockets(
  native: NativeLanes,
  lane: AcceptedLane,
  net: { fd: number; pending: Buffer },
  local: { fd: number; pending: Buffer },
  toNet: Buffer = local.pending,
): Relay {
  return native.relay({
    ...laneRelayOptions(lane, net),
    localRead: local.fd,
    localWrite: local.fd,
    closeLocal: true,
    ...(toNet.length > 0 ? { toNet } : {}),
    localKind: 'socket',
  });
}
