/**
 * Writes to a Node socket's handle, past its Writable stream, as Node's own net.Socket does
 * underneath (lib/internal/stream_base_commons.js, writeGeneric: a WriteWrap, then the handle's
 * writeBuffer). Node's path adds, per write, its Writable bookkeeping and a `process.nextTick`
 * for the write's callback (and with it a pass of the tick queue); a spliced socket writes once
 * per request each way, so that is paid per request.
 *
 * Structural and feature-tested, so shared/ stays platform-neutral: where any piece is missing
 * (not Node, or a Node whose internals differ) `HandleWrites.of` returns undefined and the
 * socket is written as any socket is.
 */

/** The part of Node's stream_wrap binding used here. */
interface StreamWrapBinding {
  WriteWrap: new () => WriteRequest;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

/**
 * Runs once a write that had to wait is written (`error` if it failed); `end` and `release` are
 * what the caller passed with it (one function per socket, not a closure per write).
 */
export type WrittenLater = (error: Error | undefined, end: number, release: (() => void) | undefined) => void;

/** Node's WriteWrap: the handle calls `oncomplete(status)` on it once an unfinished write ends. */
interface WriteRequest {
  oncomplete?: (this: WriteRequest, status: number) => void;
  /** Ours: the writer, the bytes (kept alive until written), and what the caller passed. */
  writes?: HandleWrites;
  data?: Uint8Array;
  end?: number;
  release?: (() => void) | undefined;
}

interface WriteHandle {
  writeBuffer(request: WriteRequest, data: Uint8Array): number;
}

/** The part of a net.Socket looked at before each write. */
export interface HandleSocket {
  readonly _handle?: unknown;
  readonly connecting?: boolean;
  readonly writable?: boolean;
  readonly writableLength?: number;
  readonly writableCorked?: number;
  readonly destroyed?: boolean;
  destroy(error?: Error): void;
}

let binding: StreamWrapBinding | null | undefined;

function streamWrap(): StreamWrapBinding | null {
  if (binding !== undefined) return binding;
  binding = null;
  try {
    const processBinding = (globalThis as { process?: { binding?: (name: string) => unknown } }).process?.binding;
    const found = processBinding?.('stream_wrap') as Partial<StreamWrapBinding> | undefined;
    if (
      typeof found?.WriteWrap === 'function' &&
      found.streamBaseState instanceof Int32Array &&
      typeof found.kLastWriteWasAsync === 'number'
    ) {
      binding = found as StreamWrapBinding;
    }
  } catch {
    // Not Node, or process.binding refused (--no-deprecation=throw and the like): Writable path.
  }
  return binding;
}

function completed(this: WriteRequest, status: number): void {
  const { writes, end, release } = this;
  this.writes = this.data = this.release = undefined;
  writes!.completed(status, end!, release);
}

/**
 * A socket's writes straight to its handle while nothing of the socket's own is queued. Bytes go
 * to the kernel in the same order as the socket's own writes (the handle queues both alike), and
 * a socket.end() after them shuts the socket down once they are written (libuv's shutdown waits
 * for its write queue). What the socket does not know: its `bytesWritten` and `writableLength`
 * leave these bytes out, and its idle timeout (none on a spliced socket) is not refreshed by them.
 */
export class HandleWrites {
  private constructor(
    private readonly socket: HandleSocket,
    private readonly stream: StreamWrapBinding,
  ) {}

  /** Set by the one who writes (spliceSocket): told of each write that had to wait. */
  writtenLater: WrittenLater = () => {};

  /** Undefined where this Node (or runtime) lacks what it needs. */
  static of(socket: HandleSocket): HandleWrites | undefined {
    const stream = streamWrap();
    if (stream === null) return undefined;
    const handle = socket._handle as Partial<WriteHandle> | null | undefined;
    if (typeof handle?.writeBuffer !== 'function') return undefined;
    if (typeof socket.writableLength !== 'number' || typeof socket.writableCorked !== 'number') return undefined;
    return new HandleWrites(socket, stream);
  }

  /**
   * Writes `data` now if the socket has nothing of its own queued: true once the kernel took all
   * of it, false if the rest waits in the handle's queue (`writtenLater` gets `end` and `release`
   * once it is written, with an error if that failed, the socket then destroyed with it),
   * undefined if it was not written (the socket has writes queued, is corked, ended or closed, or
   * the write failed at once): the caller then writes it through the socket, which reports any
   * error as its own.
   */
  write(data: Uint8Array, end: number, release?: () => void): boolean | undefined {
    const socket = this.socket;
    const handle = socket._handle as WriteHandle | null | undefined;
    if (
      !handle ||
      socket.connecting ||
      socket.writable === false ||
      socket.writableLength !== 0 ||
      socket.writableCorked !== 0
    ) {
      return undefined;
    }
    const request = new this.stream.WriteWrap();
    request.oncomplete = completed;
    const status = handle.writeBuffer(request, data);
    if (status !== 0) return undefined;
    if (this.stream.streamBaseState[this.stream.kLastWriteWasAsync] === 0) return true;
    request.writes = this;
    request.data = data;
    request.end = end;
    request.release = release;
    return false;
  }

  /** @internal A write that waited is done (status < 0: it failed). */
  completed(status: number, end: number, release: (() => void) | undefined): void {
    const error = status < 0 ? new Error(`write failed (${status})`) : undefined;
    if (error && !this.socket.destroyed) this.socket.destroy(error);
    this.writtenLater(error, end, release);
  }
}
