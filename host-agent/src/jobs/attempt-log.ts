import { HangarError, type Disposable } from '@hangar/shared';
import { closeSync, fstatSync, openSync, writeSync, type FSWatcher } from 'node:fs';
import { watchFile } from '../file-watch.js';
import type { JobOutput } from './executors/types.js';

/**
 * Growth is noticed through the file system's change events (inotify, kqueue); this slow look at
 * the size catches whatever a watcher misses (no inotify watches left, a file system without
 * events), so a follower is late by at most this much instead of stuck.
 */
const BACKSTOP_POLL_MS = 250;
/**
 * After a change event the watch is dropped and the size looked at this often until it stops
 * growing, then watched again: a job writes its output 4–8 KiB at a time, and a change event per
 * write cost an idle agent ~0.3–0.6 ms of CPU per MB of log (a JavaScript callback and an fstat
 * each, 25,000 for 200 MB), and the job's writes an event each. A follower of a busy log is late
 * by at most this much more.
 */
export const BURST_POLL_MS = 5;

/**
 * The merged output of one attempt. The job writes to the file itself (see JobOutput.fd); the
 * agent learns of growth from file change events and reads the size from the file, so a
 * follower is told about bytes only once they are in the file: a crash of the agent loses
 * nothing that a follower has seen, and followers can always read what they were told exists.
 */
export class AttemptLog implements Disposable, JobOutput {
  private handle: number | undefined;
  private bytes: number;
  private watcher: FSWatcher | undefined;
  private readonly backstop: NodeJS.Timeout;
  /** Set while the log is looked at every BURST_POLL_MS instead of watched (it is growing). */
  private burst: NodeJS.Timeout | undefined;
  private burstSize = 0;
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
    this.watch();
    this.backstop = setInterval(() => this.noticeGrowth(), BACKSTOP_POLL_MS);
    this.backstop.unref();
  }

  static open(path: string, grew: () => void): AttemptLog {
    return new AttemptLog(path, openSync(path, 'a', 0o600), grew);
  }

  get fd(): number {
    if (this.handle === undefined) throw new HangarError('E_INTERNAL', `log ${this.path} is closed`);
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
    this.watcher = undefined;
    clearTimeout(this.burst);
    clearInterval(this.backstop);
    closeSync(this.handle);
    this.handle = undefined;
  }

  private watch(): void {
    // Without a watch (out of inotify watches, say) the backstop poll carries on alone.
    this.watcher = watchFile(
      this.path,
      () => this.changed(),
      () => undefined,
    );
  }

  /** A change event: tell followers, then look every BURST_POLL_MS while the log keeps growing. */
  private changed(): void {
    this.noticeGrowth();
    if (this.burst !== undefined || this.handle === undefined) return;
    this.watcher?.close();
    this.watcher = undefined;
    this.burstSize = this.size;
    this.burst = setTimeout(() => this.lookAgain(), BURST_POLL_MS);
  }

  private lookAgain(): void {
    this.burst = undefined;
    if (this.handle === undefined) return;
    const size = this.size;
    this.noticeGrowth();
    if (size !== this.burstSize) {
      this.burstSize = size;
      this.burst = setTimeout(() => this.lookAgain(), BURST_POLL_MS);
      return;
    }
    // Quiet for a while: watch again, and look once more for a write made before the watch began.
    this.watch();
    if (this.size !== size) this.changed();
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
