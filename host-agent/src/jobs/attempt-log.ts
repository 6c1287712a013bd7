import { type Disposable, type LinkStream } from '@hangar/shared';
import { closeSync, fstatSync, openSync, watch, writeSync, type FSWatcher } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { JobOutput } from './executors/types.js';

/** Log and artifact bytes are read from disk this much at a time (bulk frames are 256 KiB). */
const READ_CHUNK = 1024 * 1024;
/**
 * Growth is noticed through the file system's change events (inotify, kqueue); this slow look at
 * the size catches whatever a watcher misses (no inotify watches left, a file system without
 * events), so a follower is late by at most this much instead of stuck.
 */
const BACKSTOP_POLL_MS = 250;

/**
 * The merged output of one attempt. The job writes to the file itself (see JobOutput.fd); the
 * agent learns of growth from file change events and reads the size from the file, so a
 * follower is told about bytes only once they are in the file: a crash of the agent loses
 * nothing that a follower has seen, and followers can always read what they were told exists.
 */
export class AttemptLog implements Disposable, JobOutput {
  private handle: number | undefined;
  private bytes: number;
  private readonly watcher: FSWatcher | undefined;
  private readonly backstop: NodeJS.Timeout;
  /** The size followers were last told about. */
  private announced: number;
  private notifyQueued = false;

  private constructor(
    readonly path: string,
    fd: number,
    private readonly grew: () => void,
  ) {
    this.handle = fd;
    this.bytes = this.announced = fstatSync(fd).size;
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(path, { persistent: false }, () => this.noticeGrowth());
      watcher.on('error', () => undefined); // the backstop poll carries on
    } catch {
      watcher = undefined; // e.g. ENOSPC: out of inotify watches; the backstop poll covers it
    }
    this.watcher = watcher;
    this.backstop = setInterval(() => this.noticeGrowth(), BACKSTOP_POLL_MS);
    this.backstop.unref();
  }

  static open(path: string, grew: () => void): AttemptLog {
    return new AttemptLog(path, openSync(path, 'a', 0o600), grew);
  }

  get fd(): number {
    if (this.handle === undefined) throw new Error(`log ${this.path} is closed`);
    return this.handle;
  }

  /** Bytes in the log now (after dispose: when it was closed). */
  get size(): number {
    if (this.handle !== undefined) this.bytes = fstatSync(this.handle).size;
    return this.bytes;
  }

  write(chunk: Uint8Array): void {
    if (this.handle === undefined || chunk.length === 0) return;
    let written = 0;
    while (written < chunk.length) written += writeSync(this.handle, chunk, written, chunk.length - written);
    this.noticeGrowth();
  }

  dispose(): void {
    if (this.handle === undefined) return;
    this.bytes = fstatSync(this.handle).size;
    this.watcher?.close();
    clearInterval(this.backstop);
    closeSync(this.handle);
    this.handle = undefined;
  }

  /** Many change events in one turn of the event loop (a flood) make one notification. */
  private noticeGrowth(): void {
    if (this.notifyQueued || this.handle === undefined || this.size === this.announced) return;
    this.announced = this.bytes;
    this.notifyQueued = true;
    setImmediate(() => {
      this.notifyQueued = false;
      this.grew();
    });
  }
}

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
 * Sends a log on a stream from `from`: the file up to its current end, then what is appended,
 * always read back from the file, so there is no seam between "old" and "live" bytes where
 * something could be lost or sent twice. Reading pauses while the stream is over its window.
 * Closes the stream with `log_end` (and the exit code) when the log is final, or without
 * follow at the current end.
 */
export function streamLog(source: LogSource, stream: LinkStream, from: number, follow: boolean): Promise<void> {
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

  const run = async () => {
    let offset = from;
    let file: FileHandle | undefined;
    try {
      while (!closed) {
        if (blocked) {
          await sleep();
          continue;
        }
        const state = source.state();
        if (state.path !== undefined && offset < state.size) {
          file ??= await open(state.path, 'r');
          const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, state.size - offset));
          const { bytesRead } = await file.read(buffer, 0, buffer.length, offset);
          if (bytesRead === 0) {
            // The file is shorter than recorded (pruned, or a crash before the write): end here.
            stream.close({ code: 'log_end', message: 'log ends here', exit_code: null });
            return;
          }
          offset += bytesRead;
          if (closed) return;
          if (!stream.write(buffer.subarray(0, bytesRead))) blocked = true;
          continue;
        }
        if (state.final !== undefined || !follow) {
          stream.close({
            code: 'log_end',
            message: state.final?.message ?? 'end of the log so far',
            exit_code: state.final?.exitCode ?? null,
          });
          return;
        }
        await sleep();
      }
    } finally {
      subscriptions.forEach((subscription) => void subscription.dispose());
      await file?.close();
    }
  };
  return run();
}
