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
import { openLane, type OpenedLane } from '../link/lanes.js';

/** Keystrokes typed while reconnecting are held up to this much, then dropped (never replayed twice). */
const MAX_PENDING_INPUT = 64 * 1024;
/** Moving to a better link waits at most this long for the host to take what was typed on the old one. */
const INPUT_SETTLE_MS = 2_000;
/** A detach on a lane waits this long at most for the lane's CLOSE to leave (see detach). */
const LANE_DETACH_WAIT_MS = 2_000;

/**
 * An attachment another client of this device holds (a running core's terminal), taken over on
 * this client's own link: asked once the link is up, so that the holder's output stops as late as
 * possible. `offset` is the next byte the caller lacks; the attachment must still hold it.
 */
export type TakeOver = () => Promise<{ attachmentId: string; offset: number }>;

/**
 * A terminal's keys and output over a lane (lane/PROTOCOL.md, "Purposes: terminal"), relayed by
 * its opener (the hangar command: its terminal ↔ the lane, natively).
 */
export interface TerminalLane {
  /** Keys that reached JavaScript after the move: sent behind what the relay has sent. */
  write(data: Uint8Array): void;
  /** The mux stream's output has all been delivered (its `lane` close): the lane's may follow. */
  streamDone(): void;
  /** Ends the lane (CLOSE); ended then settles. */
  close(): void;
  /** The terminal's end (the lane's CLOSE), or `broke` when the lane ended otherwise. */
  readonly ended: Promise<{ reason: CloseReason } | { broke: string }>;
}

/**
 * Starts relaying a lane the agent accepted; `held` are the keys typed since the move began, to
 * be sent before anything read from the terminal. Throwing leaves the terminal on its stream.
 */
export type LaneStarter = (lane: OpenedLane, held: Uint8Array[]) => TerminalLane;

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
  /** Moving onto a lane: input waits (pendingInput) until the lane's relay takes it. */
  private laning = false;
  private detaching = false;
  /** Settles when the move onto a lane under way has (a detach waits for it: see detach). */
  private laneMove: Promise<void> | undefined;
  /** The lane keys and output go over, once moved (toLane). */
  private lane: TerminalLane | undefined;
  /** The stream that closed with code `lane` (its output all delivered). */
  private streamLaned: LinkStream | undefined;
  /** The link is down; onLink resumes (or restarts) the terminal when it is back. */
  private linkDown = false;
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
        client.linkDown = false;
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
    if (this.lane) {
      this.lane.write(data);
      return;
    }
    if (this.stream && !this.stream.closed && !this.moving && !this.laning) {
      // A keystroke leaves before the rest of its caller's callback has run (stream.write's now).
      this.stream.write(data, { now: true });
      return;
    }
    // A move onto a lane is bounded (the lane's answer within 5 s) and drops nothing: a paste
    // while it is under way goes on whole, after the keys before it.
    if (!this.laning && this.pendingInputBytes + data.length > MAX_PENDING_INPUT) return;
    this.pendingInput.push(data);
    this.pendingInputBytes += data.length;
  }

  resize(cols: number, rows: number): void {
    this.size = { cols, rows };
    if (!this.onAttachment()) return;
    this.connection.call('terminal.resize', { attachment_id: this.attachmentId, cols, rows }).catch(() => {
      // A resize lost with the link is re-sent by the next attach, which carries the size.
    });
  }

  /** Asks tmux to repaint this client's screen, e.g. after a notice was drawn over it. */
  redraw(): void {
    if (!this.onAttachment()) return;
    this.connection.call('terminal.redraw', { attachment_id: this.attachmentId }).catch(() => {
      // Cosmetic: a repaint lost with the link is not worth an error.
    });
  }

  /**
   * The host holds this client's attachment where terminal.resize and terminal.redraw reach it:
   * on its stream, on a lane, or moving onto one (between the stream's `lane` close and the
   * lane's ACCEPT it is on neither; a resize dropped there would leave the window at the old size
   * until the next one). If the lane does not come, the fresh attach carries the size.
   */
  private onAttachment(): boolean {
    return !this.ended && (this.stream !== undefined || this.lane !== undefined || this.laning);
  }

  ack(offset: number): void {
    const stream = this.stream ?? this.opening;
    if (stream && !stream.closed && offset <= stream.recvOffset) stream.ack(offset);
  }

  /** Leaves the session running and frees this client's attachment on the host. */
  async detach(): Promise<void> {
    if (this.ended || this.detaching) return;
    this.detaching = true;
    // Keys typed while a lane opens wait for it: they reach the session (over the lane, or the
    // stream if none came) before the detach.
    if (this.laneMove) await this.laneMove;
    if (this.ended) return;
    const id = this.attachmentId;
    const lane = this.lane;
    this.end({ code: TERMINAL_CLOSE.detached, message: 'detached' });
    if (lane) {
      // On a lane the host detaches once the lane closes, after every key sent before its CLOSE
      // reached the pty: a session.detach over the link could overtake keys still on the lane.
      await Promise.race([lane.ended, new Promise((resolve) => setTimeout(resolve, LANE_DETACH_WAIT_MS))]);
      return;
    }
    await this.connection.call('session.detach', { attachment_id: id }).catch(() => undefined);
  }

  /**
   * Moves keys and output from the mux stream onto a lane beside the link, relayed by `start`
   * (lane/PROTOCOL.md, "Purposes: terminal"): no key is written to the stream after the offset
   * the lane is told, and the stream's output comes before the lane's (TerminalLane.streamDone).
   * False if it cannot move now; rejects, the terminal on its stream, if the lane could not be
   * had. Resize, redraw and detach still go over the link. A lane that breaks re-attaches through
   * the link afresh (the host could not resume that attachment: its output went around the
   * replay buffer).
   */
  async toLane(start: LaneStarter): Promise<boolean> {
    const stream = this.stream;
    if (this.ended || !stream || stream.closed || this.moving || this.laning || this.lane) return false;
    const moving = this.moveOntoLane(stream, start);
    this.laneMove = moving.then(
      () => undefined,
      () => undefined,
    );
    try {
      return await moving;
    } finally {
      this.laneMove = undefined;
    }
  }

  private async moveOntoLane(stream: LinkStream, start: LaneStarter): Promise<boolean> {
    this.laning = true;
    let lane: TerminalLane;
    try {
      const opened = await openLane(this.connection, {
        purpose: 'terminal',
        attachment_id: this.attachmentId,
        input_offset: stream.sentOffset + stream.queuedBytes,
      });
      if (this.ended || (this.stream !== stream && this.streamLaned !== stream)) {
        // Ended, or the link dropped meanwhile: the terminal resumes (or did) on a new stream.
        opened.socket.destroy();
        this.laning = false;
        return false;
      }
      lane = start(opened, this.takePendingInput());
    } catch (error) {
      this.laning = false;
      if (this.ended) return false;
      // The host moved the attachment off its stream but the lane did not come: start afresh.
      if (this.streamLaned === stream) void this.restartAfterLane();
      else if (this.stream === stream && !stream.closed) {
        for (const data of this.takePendingInput()) stream.write(data);
      }
      throw error;
    }
    this.laning = false;
    this.lane = lane;
    for (const data of this.takePendingInput()) lane.write(data);
    if (this.streamLaned === stream) lane.streamDone();
    void lane.ended.then((end) => {
      if (this.lane !== lane) return;
      this.lane = undefined;
      // The session's end as its stream would have said it; any other close (the agent closing
      // the lanes of a link that went, say) is a lane gone, not the terminal.
      if ('reason' in end && TERMINAL_ENDS.has(end.reason.code)) this.end(terminalEnd(end.reason));
      else void this.restartAfterLane();
    });
    return true;
  }

  private takePendingInput(): Uint8Array[] {
    const held = this.pendingInput;
    this.pendingInput = [];
    this.pendingInputBytes = 0;
    return held;
  }

  /** After a lane broke (or never came once the host moved the attachment): attach afresh. */
  private async restartAfterLane(): Promise<void> {
    // Link lost: onLink resumes when it is back, and the host, unable to, has us start afresh.
    if (this.ended || this.linkDown) return;
    let mux: Mux | undefined;
    try {
      mux = await this.connection.link();
      await this.attach(mux, false);
    } catch (error) {
      if (!mux?.closed) this.end(endFromError(error));
    }
  }

  /** `taking`: the resume takes another client's attachment over; it fails rather than start afresh. */
  private async attach(mux: Mux, resume: boolean, taking = false): Promise<void> {
    if (this.ended) return;
    if (this.lane) {
      // The link came back while on a lane: the lane goes, the resume (or a fresh attach) follows.
      const lane = this.lane;
      this.lane = undefined;
      lane.close();
    }
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
    this.linkDown = true;
    this.stream = undefined;
    this.statusEmitter.fire('reconnecting');
  }

  private onStreamClosed(stream: LinkStream, mux: Mux, reason: CloseReason): void {
    if (this.stream !== stream && this.opening !== stream) return;
    this.stream = undefined;
    if (mux.closed) return; // the link is gone, not the session: resume follows on the next link
    if (reason.code === TERMINAL_CLOSE.lane) {
      // Its last byte delivered: the lane's output may follow (toLane).
      this.streamLaned = stream;
      if (this.lane) this.lane.streamDone();
      // The host moved the attachment but our lane failed: it cannot be resumed; start afresh.
      else if (!this.laning) void this.restartAfterLane();
      return;
    }
    this.end(terminalEnd(reason));
  }

  private end(end: CloseReason): void {
    if (this.ended) return;
    this.ended = true;
    this.stream = undefined;
    const lane = this.lane;
    this.lane = undefined;
    lane?.close();
    this.endEmitter.fire(end);
    void this.dispose();
  }

  async dispose(): Promise<void> {
    this.ended = true;
    const lane = this.lane;
    this.lane = undefined;
    lane?.close();
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

const TERMINAL_ENDS = new Set<string>([TERMINAL_CLOSE.ended, TERMINAL_CLOSE.killed, TERMINAL_CLOSE.detached]);

/** How a terminal ends for a stream's (or a lane's) close reason. */
function terminalEnd(reason: CloseReason): CloseReason {
  if (reason.code === TERMINAL_CLOSE.ended) {
    return { code: TERMINAL_CLOSE.ended, message: reason.message, exit_code: reason.exit_code ?? null };
  }
  if (reason.code === TERMINAL_CLOSE.killed) return { code: TERMINAL_CLOSE.killed, message: reason.message };
  // Detached on the host without asking (tmux detach-client there): the session runs on.
  if (reason.code === TERMINAL_CLOSE.detached) return { code: TERMINAL_CLOSE.detached, message: reason.message };
  // The current stream taken over: another client of this device resumed the attachment on a
  // link of its own (the hangar command moving a running core's terminal onto its own link).
  // Its own moves clear the stream first, so they never come here.
  if (reason.code === 'superseded') return { code: 'superseded', message: reason.message };
  return { code: TERMINAL_CLOSE.error, message: reason.message };
}

function endFromError(error: unknown): CloseReason {
  const failure = toHangarError(error);
  if (failure.code === 'E_SESSION_NOT_FOUND') return { code: TERMINAL_CLOSE.killed, message: failure.message };
  return { code: TERMINAL_CLOSE.error, message: failure.message };
}
