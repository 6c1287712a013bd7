import { LeasedReads, ReadBufferPool, type FrameTransport } from '@hangar/shared';
import { lstatSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { DOOR_VERSION, isCoreGreeting, readGreeting, sendGreeting } from './greeting.js';
import { coreSocketPath } from './paths.js';
import { SocketFrameTransport } from './socket-transport.js';

/**
 * A running core answers its greeting at once; this bounds a core that is stuck, or a listener
 * that is not one and says nothing (then the command works on its own, only later).
 */
export const DEFAULT_GREETING_TIMEOUT_MS = 1500;

/**
 * The command's reads of the door socket land in these (Node's own reads are a fresh 64 KiB
 * buffer each: 3,000 for a 200 MB job log, each malloc'd, page-faulted and freed). A read's buffer
 * goes round again once the mux's stream is done with its bytes (a followed log's: once the command
 * wrote them out and acked them, LinkStream.releasesDataOnAck).
 */
const DOOR_READ_BUFFERS = new ReadBufferPool(64 * 1024, 96);
/**
 * ReachOptions.bulkReads: 256 KiB (a bulk frame) per read, the same 6 MiB in all: fewer reads and
 * frame parts per MB of a followed log, 0.2-0.3 ms less CPU per MB in the command (random bytes and
 * text alike). Not for every command: a stream that keeps what it gets (a terminal's output) keeps
 * a whole buffer per read of 4 KiB or more, four times as much external memory for V8 to mark for.
 */
let bulkReadBuffers: ReadBufferPool | undefined;

export type RunningCore =
  | {
      kind: 'core';
      transport: FrameTransport;
      /** With `early`: the socket holds the process open from now on (the command uses it). */
      claim: () => void;
      /**
       * Resolves when all this side wrote has left for the core and the socket is ended or gone
       * (after the transport's close): the process may exit then without cutting a frame off.
       */
      written: () => Promise<void>;
      pid: number;
      path: string;
      /** The core's protocolFingerprint(), if it said one. */
      protocol: string | undefined;
    }
  /** No core runs: nothing at the path, or a socket that a stopped core left. */
  | { kind: 'none'; path: string }
  /** Something is there that we will not use; `reason` says what, for the user. */
  | { kind: 'refused'; path: string; reason: string };

export interface ReachOptions {
  timeoutMs?: number;
  /**
   * Reached while the command's code still loads (the hangar command does so for a command that
   * will use it): until claim(), the socket does not keep the process alive, so a command that
   * ends without it (a usage error, its help) exits as it would have.
   */
  early?: boolean;
  /** The command follows a log (its stream gives each read's buffer back once written): bigger reads. */
  bulkReads?: boolean;
}

/**
 * Connects to the core running on this computer for `home`, if any, and checks it is one: it must
 * greet first with a Hangar core greeting. Never throws; the caller falls back on 'none' and 'refused'.
 */
export function reachRunningCore(home: string, options: ReachOptions = {}): Promise<RunningCore> {
  const path = coreSocketPath(home);
  const timeoutMs = options.timeoutMs ?? DEFAULT_GREETING_TIMEOUT_MS;
  const untrusted = process.platform === 'win32' ? undefined : notOurs(path);
  if (untrusted === 'absent') return Promise.resolve({ kind: 'none', path });
  if (untrusted) return Promise.resolve({ kind: 'refused', path, reason: untrusted });
  return new Promise<RunningCore>((resolve) => {
    const reads = new LeasedReads(
      options.bulkReads ? (bulkReadBuffers ??= new ReadBufferPool(256 * 1024, 24)) : DOOR_READ_BUFFERS,
    );
    const socket = connect({ path, onread: reads.onread });
    // With onread Node emits no 'data': until the transport takes the reads, they go on as 'data'
    // (copies) for the greeting's reader.
    reads.attach((chunk) => socket.emit('data', Buffer.from(chunk)));
    if (options.early) socket.unref();
    const early = (error: NodeJS.ErrnoException) => {
      socket.destroy();
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') resolve({ kind: 'none', path });
      else if (error.code === 'EACCES' || error.code === 'EPERM')
        resolve({ kind: 'refused', path, reason: `permission denied on ${path} (it is not this user's)` });
      else resolve({ kind: 'refused', path, reason: `cannot connect to ${path} (${error.code ?? error.message})` });
    };
    socket.once('error', early);
    socket.once('connect', () => {
      socket.off('error', early);
      readGreeting(socket, isCoreGreeting, timeoutMs).then(
        ({ greeting, leftover }) => {
          sendGreeting(socket, { hangar: 'client', door: DOOR_VERSION });
          resolve({
            kind: 'core',
            transport: new SocketFrameTransport(socket, leftover, undefined, reads),
            claim: () => socket.ref(),
            written: () => writtenOut(socket),
            pid: greeting.pid,
            path,
            protocol: greeting.protocol,
          });
        },
        (error: Error) => {
          socket.destroy();
          resolve({ kind: 'refused', path, reason: `${path} is not a Hangar core: ${error.message}` });
        },
      );
    });
  });
}

/**
 * Like ssh's StrictModes: what the command tells a core (a password for `hangar login`, paths)
 * goes only to a socket this user owns, in a directory no one else can write to (else another
 * user could put a listener there that greets like a core). 'absent': nothing there.
 */
function notOurs(path: string): string | 'absent' | undefined {
  const uid = process.getuid?.();
  const socket = lstatSync(path, { throwIfNoEntry: false });
  if (!socket) return 'absent';
  if (uid === undefined) return undefined;
  if (!socket.isSocket()) return `${path} is not a socket`;
  if (socket.uid !== uid) return `${path} belongs to another user (uid ${socket.uid})`;
  const dir = lstatSync(dirname(path));
  if (dir.uid !== uid || (dir.mode & 0o022) !== 0) return `${dirname(path)} can be written by another user`;
  return undefined;
}

/** Resolves once the socket's writable side is finished (its end sent) or the socket is destroyed. */
function writtenOut(socket: Socket): Promise<void> {
  if (socket.writableFinished || socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once('finish', () => resolve());
    socket.once('close', () => resolve());
  });
}
