import {
  BULK_FRAME_BYTES,
  BULK_STREAM_WINDOW,
  Emitter,
  HangarError,
  type CloseReason,
  type Disposable,
  type LinkStream,
  type Mux,
  type OpenStreamOptions,
} from '@hangar/shared';

interface Waiting {
  /** UI stream offset after this chunk. */
  end: number;
  consumed: () => void;
  /** The stream was lent the bytes (not copied): consumed only once the UI acked them. */
  lent: boolean;
  /** A gathering buffer of ours (see GATHER_BELOW_BYTES), free again once the UI acked it. */
  gathered?: Buffer;
}

/**
 * Lent pieces smaller than this (a host link's 16 KiB reads of a log that does not compress) are
 * copied together into one buffer of GATHER_BYTES, sent at the end of the event loop's turn or
 * once full, instead of one frame each: every frame cost the core's door and the hangar command a
 * round of framing, a frame event, a write and an ack's bookkeeping. Each piece is still consumed
 * only once the UI acked it (the host's window still bounds what the core holds).
 */
const GATHER_BELOW_BYTES = 32 * 1024;
/**
 * A bulk frame's size (one frame per buffer). 128 KiB buffers cost the core 0.1-0.3 ms more CPU
 * per MB of an incompressible log through the door; 512 KiB (two frames each) no less than this.
 */
const GATHER_BYTES = BULK_FRAME_BYTES;
/** Gathering buffers kept for reuse: a bulk window's worth (a fresh one each is external memory V8 marks for). */
const SPARE_GATHER_BUFFERS = BULK_STREAM_WINDOW / GATHER_BYTES;

interface Gathering {
  buffer: Buffer;
  length: number;
  consumed: (() => void)[];
}

export interface UiWriteOptions {
  /**
   * The bytes are lent until `consumed` runs (a link's pooled read buffer): they go to the UI as
   * they are, not copied, and `consumed` runs only once the UI has acked them. If the stream
   * closes first, bytes it has not acked never are consumed: nothing says they have left this
   * process (a queue the close flushes still holds them), so their buffer stays out of any pool.
   */
  lend?: boolean;
}

/** The UI opens streams with odd ids (Mux role 'client'); the core only takes over such an id. */
export function checkUiStreamId(mux: Mux, id: number): void {
  if (id % 2 === 0) {
    throw new HangarError('E_BAD_REQUEST', `stream_id: ${id} must be odd (the UI opens streams with odd ids)`);
  }
  if (mux.getStream(id)) throw new HangarError('E_BAD_REQUEST', `stream_id: stream ${id} is already in use`);
}

/**
 * The core's end of a stream the UI opened for a terminal or a log. Bytes come from a host with a
 * `consumed` callback; it runs only once the UI has acked them, and only then does the core ack
 * the host. So the host's credit window bounds what the core holds: a flood never grows its memory.
 * Until open() (called after the answer was sent) bytes and the end wait here, in order.
 */
export class UiStream implements Disposable {
  private stream: LinkStream | undefined;
  private early: { data: Uint8Array; consumed?: () => void; options?: UiWriteOptions }[] = [];
  private endReason: CloseReason | undefined;
  private written = 0;
  private waiting: Waiting[] = [];
  private gathering: Gathering | undefined;
  private gatherFlushQueued = false;
  private readonly spareGatherBuffers: Buffer[] = [];
  /** Gathering buffers sent and not acked yet (see sendGathered). */
  private gatheredInFlight = 0;
  private gone = false;
  private readonly goneEmitter = new Emitter<CloseReason>();
  /** The UI closed the stream, or its link dropped: nobody reads any more. */
  readonly onGone = this.goneEmitter.event;

  /**
   * `shape`: the window and frame size the client opened its end with (both ends use one window).
   * `ackDelayMs`: how long the ack of what the UI sends may wait for data to ride on
   * (LinkStream.ackDelayMs; the stream's default when not given).
   */
  constructor(
    private readonly mux: Mux,
    readonly id: number,
    private readonly shape: Pick<OpenStreamOptions, 'window' | 'maxFrameBytes'> = {},
    private readonly ackDelayMs?: number,
  ) {}

  open(): void {
    if (this.stream || this.gone) return;
    let stream: LinkStream;
    try {
      stream = this.mux.openStream({ id: this.id, ...this.shape });
    } catch (error) {
      // The link closed (or the id was taken) between the answer and now.
      this.markGone({ code: 'error', message: error instanceof Error ? error.message : String(error) });
      return;
    }
    this.stream = stream;
    if (this.ackDelayMs !== undefined) stream.ackDelayMs = this.ackDelayMs;
    stream.onAck((offset) => this.release(offset));
    stream.onClose((reason) => this.markGone(reason));
    for (const { data, consumed, options } of this.early.splice(0)) this.send(data, consumed, options);
    if (this.endReason) {
      // An end that came before open(): what was written before it is gathered, not sent yet.
      this.sendGathered();
      stream.close(this.endReason);
    }
  }

  /** Stream offset of the next byte written: what was sent plus what waits for open(). */
  get offset(): number {
    return this.written + (this.gathering?.length ?? 0) + this.early.reduce((sum, chunk) => sum + chunk.data.length, 0);
  }

  /** Input typed in the UI. */
  onData(listener: (data: Uint8Array) => void): Disposable {
    if (!this.stream) throw new HangarError('E_INTERNAL', `stream ${this.id} is not open yet`);
    return this.stream.onData(listener);
  }

  /**
   * `consumed` runs once the UI has acked the bytes, or (unless `lend`) once nobody will: the
   * stream closed or the UI went away.
   */
  write(data: Uint8Array, consumed?: () => void, options?: UiWriteOptions): void {
    if (this.gone || this.endReason) {
      // Nobody reads: let the host go on (a log follower drains to its end).
      consumed?.();
      return;
    }
    if (!this.stream) this.early.push(consumed ? { data, consumed, ...(options ? { options } : {}) } : { data });
    else this.send(data, consumed, options);
  }

  /** Ends the stream after the bytes already written, with `reason` for the UI. */
  end(reason: CloseReason): void {
    if (this.endReason || this.gone) return;
    this.endReason = reason;
    this.sendGathered();
    this.stream?.close(reason);
  }

  private send(data: Uint8Array, consumed?: () => void, options?: UiWriteOptions): void {
    const lent = consumed !== undefined && options?.lend === true;
    if (lent && data.length < GATHER_BELOW_BYTES) {
      this.gather(data, consumed);
      return;
    }
    this.sendGathered();
    this.stream!.write(data, lent ? { transfer: true } : undefined);
    this.written += data.length;
    if (consumed) this.waiting.push({ end: this.written, consumed, lent });
  }

  /** Copies a small lent piece behind the ones gathered this turn (GATHER_BELOW_BYTES). */
  private gather(data: Uint8Array, consumed: () => void): void {
    let gathering = this.gathering;
    if (gathering && gathering.length + data.length > gathering.buffer.length) {
      this.sendGathered();
      gathering = undefined;
    }
    if (!gathering) {
      const buffer = this.spareGatherBuffers.pop() ?? Buffer.allocUnsafeSlow(GATHER_BYTES);
      gathering = this.gathering = { buffer, length: 0, consumed: [] };
    }
    gathering.buffer.set(data, gathering.length);
    gathering.length += data.length;
    gathering.consumed.push(consumed);
    if (this.gatherFlushQueued) return;
    this.gatherFlushQueued = true;
    setImmediate(this.sendGatheredSoon);
  }

  private readonly sendGatheredSoon = (): void => {
    this.gatherFlushQueued = false;
    if (!this.gone) this.sendGathered();
  };

  /**
   * What was gathered goes to the stream, given (not copied): the buffer is ours until the UI acked it.
   * Once a bulk window's worth of buffers waits for the UI's ack, what was gathered goes as a copy of
   * its own size and the buffer is free at once: a log that trickles in (a line per turn) to a UI that
   * stopped reading would otherwise hold a whole buffer per line, up to the host's window in lines.
   */
  private sendGathered(): void {
    const gathering = this.gathering;
    if (!gathering || !this.stream) return;
    this.gathering = undefined;
    const { buffer, length, consumed } = gathering;
    const copied = this.gatheredInFlight >= SPARE_GATHER_BUFFERS;
    this.stream.write(copied ? new Uint8Array(buffer.subarray(0, length)) : buffer.subarray(0, length), {
      transfer: true,
    });
    this.written += length;
    if (copied) this.spareGatherBuffers.push(buffer);
    else this.gatheredInFlight++;
    this.waiting.push({
      end: this.written,
      consumed: consumed.length === 1 ? consumed[0]! : () => consumed.forEach((done) => done()),
      // As lent pieces: a gone UI leaves them unconsumed (a close may still be flushing the buffer).
      lent: true,
      ...(copied ? {} : { gathered: buffer }),
    });
  }

  private release(offset: number): void {
    while (this.waiting.length > 0 && this.waiting[0]!.end <= offset) {
      const { consumed, gathered } = this.waiting.shift()!;
      if (gathered) this.gatheredInFlight--;
      if (gathered && this.spareGatherBuffers.length < SPARE_GATHER_BUFFERS) this.spareGatherBuffers.push(gathered);
      consumed();
    }
  }

  private markGone(reason: CloseReason): void {
    if (this.gone) return;
    this.gone = true;
    // Lent bytes not acked may still be queued (a closing stream flushes its queue): not consumed.
    for (const { consumed, lent } of this.waiting.splice(0)) if (!lent) consumed();
    // Never handed to the stream.
    for (const { consumed } of this.early.splice(0)) consumed?.();
    for (const consumed of this.gathering?.consumed ?? []) consumed();
    this.gathering = undefined;
    this.goneEmitter.fire(reason);
    this.goneEmitter.dispose();
  }

  dispose(): void {
    if (!this.stream) this.markGone({ code: 'closed', message: 'closed before it opened' });
    else this.stream.close({ code: 'closed', message: 'closed by the core' }, { flush: false });
  }
}
