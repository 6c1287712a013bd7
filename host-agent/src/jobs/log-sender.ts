import {
  encodeLogBlockHeader,
  HangarError,
  LOG_BLOCK,
  type Disposable,
  type LogCompression,
  type LinkStream,
} from '@hangar/shared';
import { closeSync, constants, fstatSync, openSync, realpathSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { open, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { deflateRaw } from 'node:zlib';
import { AckedBuffers } from './acked-buffers.js';

/** Log bytes are read from disk this much at a time (bulk frames are 256 KiB); also one block. */
const READ_CHUNK = 1024 * 1024;
/**
 * While a log compresses, it is read (and deflated) this much at a time: a quarter of the calls,
 * frames and acks per MB of 1 MiB pieces, the same deflate work. At most MAX_LOG_BLOCK_BYTES, so
 * any core reads these blocks; raw blocks stay at most READ_CHUNK (a raw block is sent as it is,
 * and four of them fill a bulk stream's window), also when such a piece does not compress.
 */
const COMPRESSED_READ_CHUNK = 4 * 1024 * 1024;
/** Pieces read and encoded ahead of the one being sent. */
const READ_AHEAD = 3;
/** Smaller pieces (a live job's latest lines) go as they are: nothing to gain, latency to lose. */
const MIN_COMPRESS_BYTES = 4096;
const DEFLATE_OUTPUT_CHUNK = 128 * 1024;
/** A block counts as compressible when it shrinks to this share of its size or less. */
const WORTH_IT = 0.75;
/**
 * Before a block is deflated after a miss (and for the first block), this much of it is tried
 * first: random bytes cost a 64 KiB attempt per probe instead of a whole MiB's (~20 ms).
 */
const PROBE_BYTES = 64 * 1024;
/** After an incompressible block, this many blocks go raw, doubling per miss up to the cap. */
const FIRST_PENALTY = 4;
const MAX_PENALTY = 256;

const deflate = promisify(deflateRaw);

/** What a follower needs to know about the log it reads, asked again after each change. */
export interface LogState {
  /** undefined while the attempt has not started (a follower of a queued job waits for it). */
  path: string | undefined;
  size: number;
  /** Set once the log cannot grow any more. */
  final: { exitCode: number | null; message: string } | undefined;
}

export interface LogSource {
  state(): LogState;
  /** Fires when the log grows or the attempt changes state. */
  onChange(listener: () => void): Disposable;
}

/**
 * Turns pieces of log into blocks (see shared log-blocks.ts). DEFLATE at level 1, on libuv's
 * thread pool (the agent's event loop keeps serving keystrokes meanwhile): build output shrinks
 * ~7×, `yes` ~170×. Data that does not compress (random bytes, already compressed output) would
 * cost ~20 ms per MiB for nothing, so after a miss the next blocks go raw for a while.
 */
export class LogBlockEncoder {
  private skip = 0;
  private penalty = 0;
  /** False until a block turned out compressible: the first block is probed too. */
  private hit = false;

  /** True while blocks compress (no miss since the last hit): bigger pieces are worth reading. */
  get compressing(): boolean {
    return this.hit && this.penalty === 0;
  }

  async encode(chunk: Uint8Array): Promise<Uint8Array[]> {
    const raw = () => rawBlocks(chunk);
    if (chunk.length < MIN_COMPRESS_BYTES) return raw();
    if (this.skip > 0) {
      this.skip--;
      return raw();
    }
    if ((!this.hit || this.penalty > 0) && chunk.length > 2 * PROBE_BYTES) {
      const probe = await deflate(chunk.subarray(0, PROBE_BYTES), { level: 1 });
      if (probe.length > PROBE_BYTES * WORTH_IT) {
        this.miss();
        return raw();
      }
    }
    // Bigger output pieces than zlib's 16 KiB: each piece is a trip back to the event loop.
    const body = await deflate(chunk, { level: 1, chunkSize: DEFLATE_OUTPUT_CHUNK });
    if (body.length <= chunk.length * WORTH_IT) {
      this.penalty = 0;
      this.hit = true;
      return [encodeLogBlockHeader(LOG_BLOCK.deflate, chunk.length, body.length), body];
    }
    this.miss();
    return raw();
  }

  private miss(): void {
    this.penalty = Math.min(MAX_PENALTY, this.penalty === 0 ? FIRST_PENALTY : this.penalty * 2);
    this.skip = this.penalty;
  }
}

/**
 * `chunk` as raw blocks of at most READ_CHUNK: a bigger piece that turned out not to compress
 * would be a block over the bulk window (4 MiB and its header), which a reader that acks whole
 * blocks only (cores before raw blocks were taken in pieces) could never receive the end of.
 */
function rawBlocks(chunk: Uint8Array): Uint8Array[] {
  if (chunk.length <= READ_CHUNK) return [encodeLogBlockHeader(LOG_BLOCK.raw, chunk.length, chunk.length), chunk];
  const parts: Uint8Array[] = [];
  for (let at = 0; at < chunk.length; at += READ_CHUNK) {
    const body = chunk.subarray(at, at + READ_CHUNK);
    parts.push(encodeLogBlockHeader(LOG_BLOCK.raw, body.length, body.length), body);
  }
  return parts;
}

/** A piece of log ready to send, and the read buffer to account for once it is sent raw. */
interface Piece {
  parts: Uint8Array[];
  buffer: Buffer | undefined;
  pool: AckedBuffers;
}

export interface StreamLogOptions {
  from: number;
  follow: boolean;
  compression: LogCompression;
}

/**
 * Sends a log on a stream from `from`: the file up to its current end, then what is appended,
 * always read back from the file, so there is no seam between "old" and "live" bytes where
 * something could be lost or sent twice. Reading pauses while the stream is over its window.
 * Closes the stream with `log_end` (and the exit code) when the log is final, or without
 * follow at the current end.
 */
export function streamLog(source: LogSource, stream: LinkStream, options: StreamLogOptions): Promise<void> {
  const encoder = options.compression === 'deflate' ? new LogBlockEncoder() : undefined;
  let wake: (() => void) | undefined;
  const poke = () => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  let blocked = false;
  let closed = false;
  const subscriptions = [
    source.onChange(poke),
    stream.onDrain(() => {
      blocked = false;
      poke();
    }),
    stream.onClose(() => {
      closed = true;
      poke();
    }),
  ];
  const sleep = () => new Promise<void>((resolve) => (wake = resolve));

  // Read buffers go round: used again once compressed, or once the peer acked their raw bytes.
  const buffers = new AckedBuffers(stream, READ_CHUNK, READ_AHEAD + 8);
  // Pieces of a compressing log (given back once deflated, unless the block turned out raw).
  const bigBuffers = new AckedBuffers(stream, COMPRESSED_READ_CHUNK, READ_AHEAD);
  /** Reads [at, at + length) and encodes it; undefined when the file turned out shorter. */
  const readPiece = async (file: FileHandle, at: number, length: number): Promise<Piece | undefined> => {
    const pool = length > READ_CHUNK ? bigBuffers : buffers;
    const buffer = pool.take();
    const { bytesRead } = await file.read(buffer, 0, length, at);
    if (bytesRead < length) {
      pool.giveBack(buffer);
      return undefined;
    }
    const piece = buffer.subarray(0, length);
    const parts = encoder ? await encoder.encode(piece) : [piece];
    // Sent raw (whole or in blocks), the parts are views of the read buffer.
    const raw = parts.some((part) => part.buffer === buffer.buffer);
    if (!raw) pool.giveBack(buffer);
    return { parts, buffer: raw ? buffer : undefined, pool };
  };
  const send = (piece: Piece) => {
    for (const part of piece.parts) if (!stream.write(part, { transfer: true })) blocked = true;
    if (piece.buffer) piece.pool.written(piece.buffer);
  };

  const run = async () => {
    let offset = options.from;
    let file: FileHandle | undefined;
    // Pieces being read and compressed, sent in order: reads and DEFLATE run on the thread pool,
    // so a few at once keep both cores busy instead of waiting on one round trip per MiB.
    const pieces: Promise<Piece | undefined>[] = [];
    try {
      while (!closed) {
        const state = source.state();
        if (state.path !== undefined && !blocked) {
          while (pieces.length < READ_AHEAD && offset < state.size) {
            file ??= await openLog(state.path);
            const chunk = encoder?.compressing ? COMPRESSED_READ_CHUNK : READ_CHUNK;
            const length = Math.min(chunk, state.size - offset);
            pieces.push(readPiece(file, offset, length));
            offset += length;
          }
        }
        if (pieces.length > 0) {
          const piece = await pieces.shift()!;
          if (closed) return;
          if (piece === undefined) {
            // The file is shorter than recorded (pruned, or a crash before the write): end here.
            stream.close({ code: 'log_end', message: 'log ends here', exit_code: null });
            return;
          }
          send(piece);
          continue;
        }
        if (blocked) {
          await sleep();
          continue;
        }
        if (state.final !== undefined || !options.follow) {
          stream.close({
            code: 'log_end',
            message: state.final?.message ?? 'end of the log so far',
            exit_code: state.final?.exitCode ?? null,
          });
          return;
        }
        // Caught up with a live log: a quiet job should not keep a follower's buffers.
        buffers.trim();
        bigBuffers.trim();
        await sleep();
      }
    } finally {
      subscriptions.forEach((subscription) => void subscription.dispose());
      // Reads still under way must finish before the file is closed under them.
      await Promise.allSettled(pieces);
      await file?.close();
      buffers.dispose();
      bigBuffers.dispose();
    }
  };
  return run();
}

/*
 * An attempt's log is opened as the agent wrote it, or not at all: a symlink in its place (a job
 * that runs as the agent's user, unsandboxed, can reach ../log from its workdir) is refused
 * (O_NOFOLLOW), so is one in the attempt's or job's folder (realpath, below the jobs folder), and
 * anything but a regular file (a FIFO would block the open: O_NONBLOCK). As openArtifactCopy has
 * it for artifacts. The path is the agent's own (LogState.path: <jobs>/<job>/<attempt>/log).
 * (A hard link in its place is not told apart, as for artifacts.)
 */
const LOG_OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

function notTheLog(why: string): HangarError {
  return new HangarError(
    'E_JOB_STATE',
    `the attempt's log on the host is not the log the agent wrote (${why}); it is not sent ` +
      '(did the job replace ../log from its workdir?)',
  );
}

/** Throws unless no folder between the jobs folder and the log is a symlink (after the open). */
function checkFolders(path: string): void {
  const jobsDir = resolve(path, '..', '..', '..');
  if (realpathSync(path) !== join(realpathSync(jobsDir), relative(jobsDir, path))) {
    throw notTheLog('a folder of its path is a symlink');
  }
}

function refusedOpen(error: unknown): unknown {
  return (error as NodeJS.ErrnoException).code === 'ELOOP' ? notTheLog('a symlink is in its place') : error;
}

/** The log at `path` opened for reading (pread), refused unless it is a regular file (see above). */
export function openLogSync(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, LOG_OPEN_FLAGS);
  } catch (error) {
    throw refusedOpen(error);
  }
  try {
    if (!fstatSync(fd).isFile()) throw notTheLog('not a regular file');
    checkFolders(path);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  return fd;
}

async function openLog(path: string): Promise<FileHandle> {
  let file: FileHandle;
  try {
    file = await open(path, LOG_OPEN_FLAGS);
  } catch (error) {
    throw refusedOpen(error);
  }
  try {
    if (!(await file.stat()).isFile()) throw notTheLog('not a regular file');
    checkFolders(path);
  } catch (error) {
    await file.close();
    throw error;
  }
  return file;
}
