import { HangarError, type Disposable } from '@hangar/shared';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Worker } from 'node:worker_threads';

/**
 * Files at least this big are hashed in a worker thread as they are written; smaller ones on the
 * event loop once written (a worker costs a thread start, ~10–30 ms of CPU, for a ~1 ms hash).
 */
export const OFF_THREAD_BYTES = 1024 * 1024;

/**
 * The worker: hashes one file at a time, reading it from disk (the page cache: it was just written)
 * up to where the writer says it is complete. Source text rather than a file beside this one, so
 * it runs the same from the build and from sources (tests run TypeScript directly).
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const { createHash } = require('node:crypto');
const buffer = Buffer.allocUnsafe(1024 * 1024);
// The file being hashed: { id, fd, hash, at }, or { id, failed } once reading it failed.
let job;
function close() {
  if (job && job.fd !== undefined) closeSync(job.fd);
  job = undefined;
}
parentPort.on('message', (message) => {
  if (message.kind === 'open') {
    try {
      close();
      job = { id: message.id, fd: openSync(message.path, 'r'), hash: createHash('sha256'), at: 0 };
    } catch (error) {
      job = { id: message.id, failed: String(error.message) };
    }
    return;
  }
  if (!job || job.id !== message.id) {
    if (message.kind === 'digest') parentPort.postMessage({ id: message.id, error: 'no such file open' });
    return;
  }
  try {
    if (job.failed === undefined) {
      while (job.at < message.end) {
        const read = readSync(job.fd, buffer, 0, Math.min(buffer.length, message.end - job.at), job.at);
        if (read === 0) throw new Error('the file ends at byte ' + job.at + ', before byte ' + message.end);
        job.hash.update(buffer.subarray(0, read));
        job.at += read;
      }
    }
  } catch (error) {
    close();
    job = { id: message.id, failed: String(error.message) };
  }
  if (message.kind === 'digest') {
    const { id, failed, hash } = job;
    close();
    parentPort.postMessage(failed === undefined ? { id, sha256: hash.digest('hex') } : { id, error: failed });
  }
});
`;

/** The sha256 of a file that is being appended to, fed as its bytes land. */
export interface FileHash {
  /** The file holds every byte before `end` (they may be hashed from now on). */
  written(end: number): void;
  /** The sha256 of the file's first `end` bytes (all of them written). */
  digest(end: number): Promise<string>;
}

/**
 * Hashes downloaded files off the event loop: a file's bytes are read back from disk by a worker
 * thread, behind the writer, so the event loop spends nothing per byte on the hash (a fifth of it
 * during an artifact download, bench:jobs). What is checked is then what the file holds, not what
 * arrived: a byte damaged on its way to the disk is caught too. One worker, started on first use
 * for a file of at least OFF_THREAD_BYTES, serves one file at a time; small files are hashed on the
 * event loop once written.
 */
export class FileHasher implements Disposable {
  private worker: Worker | undefined;
  private nextId = 0;
  private pending: { id: number; resolve: (sha256: string) => void; reject: (error: Error) => void } | undefined;
  private failure: Error | undefined;

  /** Starts the hash of `path` (appended to from byte 0 on) whose final size is `size`. */
  open(path: string, size: number): FileHash {
    if (size < OFF_THREAD_BYTES) {
      return { written: () => undefined, digest: (end) => hashPrefix(path, end) };
    }
    const worker = this.start();
    const id = ++this.nextId;
    worker.postMessage({ kind: 'open', id, path });
    let posted = 0;
    return {
      written: (end) => {
        if (end <= posted) return;
        posted = end;
        worker.postMessage({ kind: 'update', id, end });
      },
      digest: (end) =>
        new Promise<string>((resolve, reject) => {
          if (this.failure) return reject(this.failure);
          this.pending?.reject(new Error('superseded'));
          this.pending = { id, resolve, reject };
          // Awaited, the hash keeps the process alive until it answers (as a read would).
          worker.ref();
          worker.postMessage({ kind: 'digest', id, end });
        }),
    };
  }

  dispose(): void {
    const worker = this.worker;
    this.worker = undefined;
    this.fail(new HangarError('E_UNAVAILABLE', 'the download ended'));
    void worker?.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    // Idle between files, the worker keeps nothing alive.
    worker.unref();
    worker.on('message', (reply: { id: number; sha256?: string; error?: string }) => {
      const pending = this.pending;
      if (!pending || reply.id !== pending.id) return;
      this.pending = undefined;
      worker.unref();
      if (reply.sha256 !== undefined) pending.resolve(reply.sha256);
      else pending.reject(new HangarError('E_INTERNAL', `could not hash the downloaded file: ${reply.error}`));
    });
    worker.on('error', (error) => this.fail(error));
    worker.on('exit', () => {
      if (this.worker === worker) this.worker = undefined;
      this.fail(new HangarError('E_INTERNAL', 'the hashing thread stopped'));
    });
    this.failure = undefined;
    this.worker = worker;
    return worker;
  }

  private fail(error: Error): void {
    this.failure = error;
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(error);
  }
}

/** The sha256 of the file's first `end` bytes, read on the event loop. */
async function hashPrefix(path: string, end: number): Promise<string> {
  const hash = createHash('sha256');
  if (end > 0) {
    for await (const chunk of createReadStream(path, { start: 0, end: end - 1 }) as AsyncIterable<Buffer>) {
      hash.update(chunk);
    }
  }
  return hash.digest('hex');
}
