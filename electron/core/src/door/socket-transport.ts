import {
  Emitter,
  FrameReader,
  type AckListener,
  type LeasedReads,
  type ReadLease,
  type CloseReason,
  type DataPartListener,
  type Disposable,
  type FrameTransport,
} from '@hangar/shared';
import type { Socket } from 'node:net';

/** A link frame is at most a 32 KiB data chunk plus its header; far larger is not one of ours (as in web mode). */
export const MAX_DOOR_FRAME_BYTES = 1024 * 1024;
const LENGTH_BYTES = 4;
/** Frames kept while nobody listens yet (between the greeting and the mux subscribing). */
const MAX_UNCLAIMED_FRAMES = 4096;
/** A data frame's payload at least this big is written beside its head, not copied behind it. */
const SEPARATE_PAYLOAD_BYTES = 4 * 1024;

export function encodeFrame(frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(LENGTH_BYTES + frame.length);
  out.writeUInt32BE(frame.length, 0);
  out.set(frame, LENGTH_BYTES);
  return out;
}

/**
 * A FrameTransport over a local stream socket (the core's Unix socket or named pipe), after the
 * greeting: length-prefixed frames, backpressure from the socket's own write buffer. Sends of one
 * event-loop turn leave in one write (corked until setImmediate), as the WebSocket transport does.
 *
 * Frames are cut out of the reads by the link's own FrameReader (the framing is the raw TLS
 * link's): a frame inside a read is a view of it, a big data frame split across reads (a job
 * log's, up to 256 KiB, read 64 KiB at a time) goes to the mux in pieces as its bytes arrive
 * (onDataPart), where a buffer of its own and a copy of every byte were needed, and an ack is
 * read in place (onAck). Until the mux listens, frames come whole and wait (unclaimed).
 */
export class SocketFrameTransport implements FrameTransport {
  private readonly frames = new Emitter<Uint8Array>();
  private readonly drains = new Emitter<void>();
  private readonly closes = new Emitter<CloseReason>();
  private readonly reader: FrameReader;
  private dataParts: DataPartListener | undefined;
  private acks: AckListener | undefined;
  private unclaimed: Uint8Array[] | undefined = [];
  private closeReason: CloseReason | undefined;
  private corked = false;

  /**
   * `leftover`: bytes that arrived with the greeting, already past it. `reads`: the socket reads
   * into pooled buffers (connected with its onread); a data frame's bytes go on with their lease.
   */
  constructor(
    private readonly socket: Socket,
    leftover: Buffer[] = [],
    maxFrameBytes = MAX_DOOR_FRAME_BYTES,
    reads?: LeasedReads,
  ) {
    this.reader = new FrameReader(maxFrameBytes, reads?.buffers);
    if (reads) reads.attach((chunk, lease) => this.receive(chunk, lease));
    else socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('drain', () => this.drains.fire());
    socket.on('error', (error: NodeJS.ErrnoException) =>
      this.finish({ code: 'door_error', message: `the local socket failed: ${error.code ?? error.message}` }),
    );
    socket.on('close', () => this.finish({ code: 'closed', message: 'the local socket closed' }));
    for (const chunk of leftover) this.receive(chunk);
  }

  get bufferedAmount(): number {
    return this.socket.writableLength;
  }

  get closed(): boolean {
    return this.closeReason !== undefined;
  }

  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.cork();
    this.socket.write(encodeFrame(frame));
  }

  /**
   * A data frame as its head and payload: a bulk payload (a job log's piece) goes to the socket as
   * it is, beside a buffer with the length and the head, where joining them copied it twice (the
   * frame, then the length before it). The socket holds the payload until the kernel has it; a
   * lent payload (a pooled read) is given back only on the peer's ack, so after that. Small ones
   * (a keystroke's echo) are joined as before.
   */
  sendParts(head: Uint8Array, body: Uint8Array): void {
    if (this.closed) return;
    this.cork();
    const length = head.length + body.length;
    const joined = body.length < SEPARATE_PAYLOAD_BYTES;
    const out = Buffer.allocUnsafe(LENGTH_BYTES + (joined ? length : head.length));
    out.writeUInt32BE(length, 0);
    out.set(head, LENGTH_BYTES);
    if (joined) out.set(body, LENGTH_BYTES + head.length);
    this.socket.write(out);
    if (!joined) this.socket.write(body);
  }

  /** Sends of one event-loop turn leave in one write (writev for several buffers). */
  private cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    setImmediate(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }

  onFrame(listener: (frame: Uint8Array) => void): Disposable {
    const subscription = this.frames.event(listener);
    const held = this.unclaimed;
    this.unclaimed = undefined;
    for (const frame of held ?? []) listener(frame);
    return subscription;
  }

  onDataPart(listener: DataPartListener): Disposable {
    this.dataParts = listener;
    return { dispose: () => void (this.dataParts === listener && (this.dataParts = undefined)) };
  }

  onAck(listener: AckListener): Disposable {
    this.acks = listener;
    return { dispose: () => void (this.acks === listener && (this.acks = undefined)) };
  }

  onDrain(listener: () => void): Disposable {
    return this.drains.event(listener);
  }

  onClose(listener: (reason: CloseReason) => void): Disposable {
    return this.closes.event(listener);
  }

  close(reason: CloseReason = { code: 'closed', message: 'closed by this side' }): void {
    if (this.closed) return;
    this.finish(reason);
    // What was written goes out first (libuv's pending writes and shutdown keep the process alive
    // until the kernel has them); the peer's own close is not waited for: a busy core does not hold
    // a command that is done (issue 18), nor does a peer that never reads.
    this.socket.end();
    this.socket.unref();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private receive(chunk: Uint8Array, lease?: ReadLease): void {
    if (this.closed) return;
    try {
      this.reader.push(chunk, this.deliver, this.dataParts, lease, this.acks);
    } catch (error) {
      this.finish({ code: 'protocol_error', message: `the local socket sent ${(error as Error).message}` });
      this.socket.destroy();
    }
  }

  private readonly deliver = (frame: Uint8Array): void => {
    if (this.closed) return;
    if (this.unclaimed) {
      if (this.unclaimed.length < MAX_UNCLAIMED_FRAMES) this.unclaimed.push(frame);
    } else this.frames.fire(frame);
  };

  private finish(reason: CloseReason): void {
    if (this.closeReason) return;
    this.closeReason = reason;
    this.closes.fire(reason);
  }
}
