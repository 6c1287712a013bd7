import {
  DisposableStore,
  Emitter,
  HangarError,
  TERMINAL_CLOSE,
  TERMINAL_OUTPUT_ACK_DELAY_MS,
  toHangarError,
  type CloseReason,
  type Disposable,
  type LinkStream,
  type Mux,
  type TerminalStatus,
} from '@hangar/shared';
import type { HostConnection } from '../connection/host-connection.js';

/** Keystrokes typed while reconnecting are held up to this much, then dropped (never replayed twice). */
const MAX_PENDING_INPUT = 64 * 1024;
/** Moving to a better link waits at most this long for the host to take what was typed on the old one. */
const INPUT_SETTLE_MS = 2_000;

/**
 * An attachment another client of this device holds (a running core's terminal), taken over on
 * this client's own link: asked once the link is up, so that the holder's output stops as late as
 * possible. `offset` is the next byte the caller lacks; the attachment must still hold it.
 */
export type TakeOver = () => Promise<{ attachmentId: string; offset: number }>;

/**
 * A client's view of one terminal session: output with byte offsets, input, resize, and
 * transparent resume after a dropped link (exact bytes within the agent's replay window; a
 * clean redraw and a `skipped` status after it).
 */
export class TerminalClient implements Disposable {
  private stream: LinkStream | undefined;
  /**
   * The stream of an attach whose answer has not been handled yet. The host writes output right
   * behind its answer, and both can come in one delivery: the output is handled at once, the
   * answer a microtask later. So output, its acks and the stream's close count from here.
   */
  private opening: LinkStream | undefined;
  private attachmentId = '';
  private nextOffset = 0;
  private size: { cols: number; rows: number };
  private pendingInput: Uint8Array[] = [];
  private pendingInputBytes = 0;
  /** Moving to another link while the old one still runs: input waits for the new stream. */
  private moving = false;
  private ended = false;
  private readonly store = new DisposableStore();
  /** Subscriptions to the current link's stream; replaced on every (re)attach. */
  private streamStore = new DisposableStore();

  private readonly outputEmitter = new Emitter<{ data: Uint8Array; offset: number }>();
  /** Output bytes; call ack(offset + data.length) once they are really consumed (written/rendered). */
  readonly onOutput = this.outputEmitter.event;
  private readonly statusEmitter = new Emitter<TerminalStatus>();
  readonly onStatus = this.statusEmitter.event;
  private readonly endEmitter = new Emitter<CloseReason>();
  /**
   * The terminal is over, as a close reason with TERMINAL_CLOSE's codes (exit_code when the
   * session's command ended by itself): what the core's clients get on their stream, as it is.
   */
  readonly onEnd = this.endEmitter.event;

  private constructor(
    private readonly connection: HostConnection,
    readonly sessionName: string,
    size: { cols: number; rows: number },
  ) {
    this.size = { ...size };
  }

  /**
   * `listen` subscribes to the client before it attaches: output (and an end) can come before
   * the attach's answer is handled, so a listener added once this resolves could miss the first
   * screen.
   */
  static async open(
    connection: HostConnection,
    sessionName: string,
    size: { cols: number; rows: number },
    listen?: (client: TerminalClient) => void,
    takeOver?: TakeOver,
  ): Promise<TerminalClient> {
    const client = new TerminalClient(connection, sessionName, size);
    listen?.(client);
    client.store.add(connection.retain());
    try {
      const mux = await connection.link();
      if (takeOver) {
        const { attachmentId, offset } = await takeOver();
        client.attachmentId = attachmentId;
        client.nextOffset = offset;
        await client.attach(mux, true, true);
      } else await client.attach(mux, false);
    } catch (error) {
      await client.store.dispose();
      throw toHangarError(error);
    }
    client.store.add(connection.onLinkLost(() => client.onLinkLost()));
    client.store.add(
      connection.onLink((mux) => {
        client.attach(mux, true).catch((error: unknown) => client.end(endFromError(error)));
      }),
    );
    return client;
  }

  get attachment(): string {
    return this.attachmentId;
  }

  /** Offset of the next output byte this client expects. */
  get offset(): number {
    return this.nextOffset;
  }

  /**
   * True once the host has taken every byte written so far on the current stream (nothing pending,
   * queued or unacknowledged); false if the terminal is between links, its stream closed, or the
   * host had not acknowledged it all within `timeoutMs`.
   */
  async inputSettled(timeoutMs: number): Promise<boolean> {
    const stream = this.stream;
    if (this.ended || !stream || stream.closed || this.moving || this.pendingInputBytes > 0) return false;
    await inputTaken(stream, timeoutMs);
    return (
      this.stream === stream &&
      !stream.closed &&
      stream.queuedBytes === 0 &&
      stream.peerAckedOffset === stream.sentOffset
    );
  }

  write(data: Uint8Array): void {
    if (this.ended) return;
    if (this.stream && !this.stream.closed && !this.moving) {
      // A keystroke leaves before the rest of its caller's callback has run (stream.write's now).
      this.stream.write(data, { now: true });
      return;
    }
    if (this.pendingInputBytes + data.length > MAX_PENDING_INPUT) return;
    this.pendingInput.push(data);
    this.pendingInputBytes += data.length;
  }

  resize(cols: number, rows: number): void {
    this.size = { cols, rows };
    if (!this.stream || this.ended) return;
    this.connection.call('terminal.resize', { attachment_id: this.attachmentId, cols, rows }).catch(() => {
      // A resize lost with the link is re-sent by the next attach, which carries the size.
    });
  }

  /** Asks tmux to repaint this client's screen, e.g. after a notice was drawn over it. */
  redraw(): void {
    if (!this.stream || this.ended) return;
    this.connection.call('terminal.redraw', { attachment_id: this.attachmentId }).catch(() => {
      // Cosmetic: a repaint lost with the link is not worth an error.
    });
  }

  ack(offset: number): void {
    const stream = this.stream ?? this.opening;
    if (stream && !stream.closed && offset <= stream.recvOffset) stream.ack(offset);
  }

  /** Leaves the session running and frees this client's attachment on the host. */
  async detach(): Promise<void> {
    if (this.ended) return;
    const id = this.attachmentId;
    this.end({ code: TERMINAL_CLOSE.detached, message: 'detached' });
    await this.connection.call('session.detach', { attachment_id: id }).catch(() => undefined);
  }

  /** `taking`: the resume takes another client's attachment over; it fails rather than start afresh. */
  private async attach(mux: Mux, resume: boolean, taking = false): Promise<void> {
    if (this.ended) return;
    const old = this.stream;
    if (resume && old && !old.closed) {
      // The connection moved to a better path and the old link still runs: keystrokes sent on it
      // reach the host before the resume on the new link takes the attachment over (else they
      // could arrive after it and be dropped); new ones wait and go on the new stream.
      this.moving = true;
      try {
        await inputTaken(old, INPUT_SETTLE_MS);
      } finally {
        this.moving = false;
      }
      if (this.ended) return;
    }
    const resumeFrom = resume ? this.nextOffset : 0;
    // Open our end first: the host may send output right behind its answer.
    const stream = mux.openStream({ recvOffset: resumeFrom });
    stream.autoAck = false;
    // Output is acked with the next keystroke (the ack rides along); alone only after a while.
    stream.ackDelayMs = TERMINAL_OUTPUT_ACK_DELAY_MS;
    await this.streamStore.dispose();
    this.streamStore = new DisposableStore();
    this.streamStore.add(stream.onData((data, offset) => this.onData(data, offset)));
    this.streamStore.add(stream.onClose((reason) => this.onStreamClosed(stream, mux, reason)));
    // Input waits until the host has opened its end (after the answer).
    this.stream = undefined;
    this.opening = stream;
    let result;
    try {
      result = await this.connection.call('session.attach', {
        name: this.sessionName,
        cols: this.size.cols,
        rows: this.size.rows,
        stream_id: stream.id,
        ...(resume ? { resume: { attachment_id: this.attachmentId, offset: resumeFrom } } : {}),
      });
    } catch (error) {
      stream.close({ code: 'attach_failed', message: toHangarError(error).message });
      throw error;
    } finally {
      this.opening = undefined;
    }
    // The stream closed behind the answer (the session ended at once): the end was told already.
    if (this.ended) return;
    if (taking && !result.resumed) {
      stream.close({ code: 'superseded', message: 'not taken over' });
      throw new HangarError('E_NOT_FOUND', `the attachment to ${this.sessionName} could not be taken over`);
    }
    if (resume && !result.resumed) {
      // The replay window passed: say so, then start over with a clean redraw from tmux.
      stream.close({ code: 'superseded', message: 'replay window passed' });
      this.statusEmitter.fire('skipped');
      await this.attach(mux, false);
      return;
    }
    this.stream = stream;
    this.attachmentId = result.attachment_id;
    // Output handled before the answer moved the stream on already.
    this.nextOffset = Math.max(result.offset, stream.recvOffset);
    this.statusEmitter.fire(resume ? 'resumed' : 'attached');
    for (const data of this.pendingInput) stream.write(data);
    this.pendingInput = [];
    this.pendingInputBytes = 0;
  }

  private onData(data: Uint8Array, offset: number): void {
    this.nextOffset = offset + data.length;
    this.outputEmitter.fire({ data, offset });
  }

  private onLinkLost(): void {
    if (this.ended) return;
    this.stream = undefined;
    this.statusEmitter.fire('reconnecting');
  }

  private onStreamClosed(stream: LinkStream, mux: Mux, reason: CloseReason): void {
    if (this.stream !== stream && this.opening !== stream) return;
    this.stream = undefined;
    if (mux.closed) return; // the link is gone, not the session: resume follows on the next link
    if (reason.code === TERMINAL_CLOSE.ended) {
      this.end({ code: TERMINAL_CLOSE.ended, message: reason.message, exit_code: reason.exit_code ?? null });
    } else if (reason.code === TERMINAL_CLOSE.killed) {
      this.end({ code: TERMINAL_CLOSE.killed, message: reason.message });
    } else if (reason.code === TERMINAL_CLOSE.detached) {
      // Detached on the host without asking (tmux detach-client there): the session runs on.
      this.end({ code: TERMINAL_CLOSE.detached, message: reason.message });
    } else if (reason.code === 'superseded') {
      // The current stream taken over: another client of this device resumed the attachment on a
      // link of its own (the hangar command moving a running core's terminal onto its own link).
      // Its own moves clear the stream first, so they never come here.
      this.end({ code: 'superseded', message: reason.message });
    } else {
      this.end({ code: TERMINAL_CLOSE.error, message: reason.message });
    }
  }

  private end(end: CloseReason): void {
    if (this.ended) return;
    this.ended = true;
    this.stream = undefined;
    this.endEmitter.fire(end);
    void this.dispose();
  }

  async dispose(): Promise<void> {
    this.ended = true;
    await this.streamStore.dispose();
    await this.store.dispose();
    this.outputEmitter.dispose();
    this.statusEmitter.dispose();
    this.endEmitter.dispose();
  }
}

/** Resolves once the peer acked every byte written to `stream` (or it closed, or `timeoutMs` passed). */
function inputTaken(stream: LinkStream, timeoutMs: number): Promise<void> {
  const taken = () => stream.closed || (stream.queuedBytes === 0 && stream.peerAckedOffset === stream.sentOffset);
  if (taken()) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const subscriptions = new DisposableStore();
    const done = () => {
      clearTimeout(timer);
      void subscriptions.dispose();
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    subscriptions.add(stream.onAck(() => taken() && done()));
    subscriptions.add(stream.onClose(done));
  });
}

function endFromError(error: unknown): CloseReason {
  const failure = toHangarError(error);
  if (failure.code === 'E_SESSION_NOT_FOUND') return { code: TERMINAL_CLOSE.killed, message: failure.message };
  return { code: TERMINAL_CLOSE.error, message: failure.message };
}
