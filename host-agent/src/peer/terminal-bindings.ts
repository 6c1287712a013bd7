import {
  DisposableStore,
  encodeReason,
  HangarError,
  TERMINAL_CLOSE,
  TERMINAL_INPUT_ACK_DELAY_MS,
  type CloseReason,
  type Disposable,
  type LinkStream,
  type Mux,
} from '@hangar/shared';
import type { Logger } from 'pino';
import type { Attachment, AttachmentEnd } from '../sessions/index.js';

interface Binding {
  attachment: Attachment;
  stream: LinkStream;
  mux: Mux;
  device: string;
  subscriptions: DisposableStore;
}

/**
 * A lane's native relay joined to an attachment's pty master (lane/PROTOCOL.md, "Purposes:
 * terminal"): what TerminalBindings needs of @hangar/lane's Relay.
 */
export interface TerminalLaneRelay {
  /** After everything queued: CLOSE with `reason` (a CloseReason as JSON), then the lane closes. */
  close(reason?: Uint8Array): void;
  readonly ended: Promise<{ how: 'closed' | 'closed_here' | 'eof' | 'error'; message?: string }>;
}

interface LaneBinding {
  attachment: Attachment;
  relay: TerminalLaneRelay;
  subscriptions: DisposableStore;
}

/** How long a lane waits for the keys the client sent on the mux stream before it (then refused). */
export const LANE_INPUT_WAIT_MS = 3_000;

/** How live output goes to the stream: at once on a quiet link, handed over (not copied). */
const LIVE_OUTPUT = { now: true, transfer: true } as const;

/**
 * Connects attachments (tmux clients, which outlive links) to link streams (which do not).
 * One attachment is bound to at most one stream; a resume on a new link takes it over.
 */
export class TerminalBindings implements Disposable {
  private readonly bindings = new Map<string, Binding>();
  /** Attachments whose keys and output go over a lane (moveToLane), not a stream. */
  private readonly lanes = new Map<string, LaneBinding>();
  /** Which device made each attachment: only that device may resume it. */
  private readonly owners = new Map<string, string>();

  owner(attachmentId: string): string | undefined {
    return this.owners.get(attachmentId);
  }

  /**
   * Streams the attachment's output from `from` (everything it still holds from there on, then
   * live) and its input the other way. The caller has checked that `from` is still held.
   */
  bind(attachment: Attachment, stream: LinkStream, mux: Mux, device: string, from: number): void {
    this.unbind(attachment.id, { code: 'superseded', message: 'attached again from a newer link' });
    if (!this.owners.has(attachment.id)) {
      // Forget the owner when the attachment ends, bound or not (e.g. after its replay window).
      attachment.onEnd(() => this.owners.delete(attachment.id));
    }
    this.owners.set(attachment.id, device);
    const subscriptions = new DisposableStore();
    const binding: Binding = { attachment, stream, mux, device, subscriptions };
    this.bindings.set(attachment.id, binding);

    // Keys are acked on their echo, with no timer per key (TERMINAL_INPUT_ACK_DELAY_MS).
    stream.ackDelayMs = TERMINAL_INPUT_ACK_DELAY_MS;
    const backlog = attachment.readFrom(from);
    if (backlog && backlog.length > 0) stream.write(backlog);
    // Live output (an echo) leaves before node-pty's read callback has finished (write's now);
    // the backlog above goes after this turn, behind the answer to the attach.
    // node-pty reads each chunk into a buffer of its own, kept unchanged by the replay buffer: the
    // stream takes it as it is (no copy per echo).
    subscriptions.add(attachment.onOutput((chunk) => void stream.write(chunk, LIVE_OUTPUT)));
    subscriptions.add(stream.onAck((offset) => attachment.ack(offset)));
    subscriptions.add(stream.onData((data) => attachment.input(data)));
    subscriptions.add(
      attachment.onEnd((end) => {
        this.forget(attachment.id);
        stream.close(endReason(attachment, end));
      }),
    );
    subscriptions.add(
      stream.onClose(() => {
        if (this.bindings.get(attachment.id) !== binding) return;
        this.unbind(attachment.id);
        // The link dropped: keep the tmux client and its unread output for the replay window.
        // The client closed the stream itself: it is gone for good.
        if (mux.closed) attachment.setConnected(false);
        else {
          this.forget(attachment.id);
          attachment.detach();
        }
      }),
    );
    attachment.setConnected(true);
  }

  /**
   * Takes a bound attachment off its stream for a lane (lane/PROTOCOL.md, "Purposes: terminal"),
   * for the link it is bound on (of its owner's device): waits until the stream has delivered `inputOffset` bytes of keys (at
   * most LANE_INPUT_WAIT_MS), checks that it drives the session's size (the client that typed
   * last), takes the pty away from JavaScript and closes the stream with code `lane` after its
   * last byte. The caller answers
   * ACCEPT and starts the relay on a dup of `masterFd` (taken at once: the fd goes with the
   * attachment's end), then `run`s it here: the attachment's end comes as the lane's CLOSE (also
   * one that came before `run`), and a lane that breaks detaches the attachment (its output went
   * around the replay buffer: it cannot be resumed); `abandon` if the lane went before that.
   * Throws a HangarError (the lane's REFUSE) when the attachment cannot move; it then stays on
   * its stream.
   */
  async takeForLane(
    attachmentId: string,
    link: { device: string; mux: Mux },
    inputOffset: number,
    logger?: Logger,
  ): Promise<{ masterFd: number; run(relay: TerminalLaneRelay): void; abandon(): void }> {
    const binding = this.bindings.get(attachmentId);
    // Its device's other links (another core of the same device) are told no more than a stranger.
    if (!binding || binding.device !== link.device || binding.mux !== link.mux) {
      throw new HangarError('E_NOT_FOUND', `no attachment ${attachmentId} of this device is attached; attach again`);
    }
    const { attachment, stream } = binding;
    const current = () => this.bindings.get(attachmentId) === binding && !stream.closed;
    // Within the client's own wait for an answer (LANE_OPEN_TIMEOUT_MS, 5 s): past it, it stays on
    // its stream, and so must the attachment.
    const deadline = performance.now() + LANE_INPUT_WAIT_MS;
    if (!(await keysArrived(stream, inputOffset, LANE_INPUT_WAIT_MS))) {
      if (stream.recvOffset > inputOffset) {
        throw new HangarError(
          'E_BAD_REQUEST',
          `input_offset: the stream carried ${stream.recvOffset} bytes of keys, more than ${inputOffset}`,
        );
      }
      if (!current()) throw new HangarError('E_UNAVAILABLE', `the attachment ${attachmentId} left its stream`);
      throw new HangarError(
        'E_TIMEOUT',
        `input_offset: only ${stream.recvOffset} of ${inputOffset} bytes of keys arrived within ${LANE_INPUT_WAIT_MS} ms`,
      );
    }
    const drives = await withinMs(attachment.prepareLane(), deadline - performance.now());
    if (drives === undefined) {
      throw new HangarError(
        'E_TIMEOUT',
        `the keys before the lane did not reach the session within ${LANE_INPUT_WAIT_MS} ms`,
      );
    }
    if (!current()) throw new HangarError('E_UNAVAILABLE', `the attachment ${attachmentId} left its stream`);
    if (!drives) {
      throw new HangarError(
        'E_UNAVAILABLE',
        `the attachment ${attachmentId} does not drive the session's size: it moves onto a lane once it has typed`,
      );
    }
    const masterFd = attachment.leavePty();
    if (masterFd === undefined) {
      throw new HangarError('E_UNAVAILABLE', `the attachment ${attachmentId} has no pty to relay`);
    }
    // From here the attachment's output no longer passes the replay buffer: a failure detaches it.
    this.bindings.delete(attachmentId);
    void binding.subscriptions.dispose();
    // Its end is heard from before the hand-over: the session can end while the lane's ACCEPT is
    // on its way, before run, and the lane's CLOSE must still say how (not a lane that broke).
    const subscriptions = new DisposableStore();
    let ended: CloseReason | undefined;
    let laneRelay: TerminalLaneRelay | undefined;
    const closeWithEnd = (relay: TerminalLaneRelay, reason: CloseReason) => {
      // Not forget(): its unbind would close the lane without the reason.
      this.lanes.delete(attachmentId);
      this.owners.delete(attachmentId);
      void subscriptions.dispose();
      relay.close(Buffer.from(encodeReason(reason)));
    };
    subscriptions.add(
      attachment.onEnd((end) => {
        ended = endReason(attachment, end);
        if (laneRelay) closeWithEnd(laneRelay, ended);
      }),
    );
    stream.close({ code: TERMINAL_CLOSE.lane, message: 'the terminal goes on over a lane' });
    const abandon = () => {
      void subscriptions.dispose();
      this.owners.delete(attachmentId);
      attachment.detach();
    };
    const run = (relay: TerminalLaneRelay) => {
      const lane: LaneBinding = { attachment, relay, subscriptions };
      this.lanes.set(attachmentId, lane);
      logger?.info({ session: attachment.sessionName, attachment: attachmentId }, 'attachment moved onto a lane');
      laneRelay = relay;
      if (ended) {
        closeWithEnd(relay, ended);
        return;
      }
      // Keys from the lane never pass input(): once another client takes the size, this one
      // could not take it back by typing. So its lane ends (the client attaches again through
      // the link, as after a lane that broke) and this attachment goes with it.
      subscriptions.add(
        attachment.onDriveLost(() =>
          relay.close(
            Buffer.from(encodeReason({ code: 'size_taken', message: 'another client typed: it drives the size now' })),
          ),
        ),
      );
      void relay.ended.then((end) => {
        if (this.lanes.get(attachmentId) !== lane) return;
        // The client closed the lane or it broke: nothing can resume the attachment, so it goes.
        logger?.info(
          { session: attachment.sessionName, attachment: attachmentId, lane: end.how, why: end.message },
          'the lane of an attachment ended; detaching',
        );
        this.forget(attachmentId);
        attachment.detach();
      });
    };
    return { masterFd, run, abandon };
  }

  /** Removes the binding (closing the stream or lane if given a reason) but keeps the attachment. */
  unbind(attachmentId: string, reason?: CloseReason): void {
    const lane = this.lanes.get(attachmentId);
    if (lane) {
      this.lanes.delete(attachmentId);
      void lane.subscriptions.dispose();
      lane.relay.close(reason ? Buffer.from(encodeReason(reason)) : undefined);
      return;
    }
    const binding = this.bindings.get(attachmentId);
    if (!binding) return;
    this.bindings.delete(attachmentId);
    void binding.subscriptions.dispose();
    if (reason && !binding.stream.closed) binding.stream.close(reason);
  }

  private forget(attachmentId: string): void {
    this.unbind(attachmentId);
    this.owners.delete(attachmentId);
  }

  dispose(): void {
    for (const id of [...this.bindings.keys(), ...this.lanes.keys()]) this.unbind(id);
    this.owners.clear();
  }
}

function endReason(attachment: Attachment, end: AttachmentEnd): CloseReason {
  return end.reason === 'exited'
    ? { code: TERMINAL_CLOSE.ended, message: `session ${attachment.sessionName} ended`, exit_code: end.exitCode }
    : end.reason === 'killed'
      ? { code: TERMINAL_CLOSE.killed, message: `session ${attachment.sessionName} was killed` }
      : { code: TERMINAL_CLOSE.detached, message: `detached from ${attachment.sessionName}` };
}

/**
 * True once `stream` has delivered exactly `offset` bytes of keys (each passed on to the
 * attachment by the binding's listener, added before this one); false if it carried more, closed,
 * or `timeoutMs` passed.
 */
function keysArrived(stream: LinkStream, offset: number, timeoutMs: number): Promise<boolean> {
  const settled = () => stream.closed || stream.recvOffset >= offset;
  const arrived = () => !stream.closed && stream.recvOffset === offset;
  if (settled()) return Promise.resolve(arrived());
  return new Promise<boolean>((resolve) => {
    const subscriptions = new DisposableStore();
    const done = () => {
      clearTimeout(timer);
      void subscriptions.dispose();
      resolve(arrived());
    };
    const timer = setTimeout(done, timeoutMs);
    subscriptions.add(stream.onData(() => settled() && done()));
    subscriptions.add(stream.onClose(done));
  });
}

/** `promise`'s value, or undefined if it has not settled within `ms`. */
async function withinMs<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), Math.max(0, ms));
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
