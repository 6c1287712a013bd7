import {
  DisposableStore,
  TERMINAL_INPUT_ACK_DELAY_MS,
  type CloseReason,
  type Disposable,
  type LinkStream,
  type Mux,
} from '@hangar/shared';
import type { Attachment } from '../sessions/index.js';

interface Binding {
  attachment: Attachment;
  stream: LinkStream;
  mux: Mux;
  device: string;
  subscriptions: DisposableStore;
}

/** How live output goes to the stream: at once on a quiet link, handed over (not copied). */
const LIVE_OUTPUT = { now: true, transfer: true } as const;

/**
 * Connects attachments (tmux clients, which outlive links) to link streams (which do not).
 * One attachment is bound to at most one stream; a resume on a new link takes it over.
 */
export class TerminalBindings implements Disposable {
  private readonly bindings = new Map<string, Binding>();
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
        const reason: CloseReason =
          end.reason === 'exited'
            ? { code: 'session_ended', message: `session ${attachment.sessionName} ended`, exit_code: end.exitCode }
            : end.reason === 'killed'
              ? { code: 'session_killed', message: `session ${attachment.sessionName} was killed` }
              : { code: 'detached', message: `detached from ${attachment.sessionName}` };
        this.forget(attachment.id);
        stream.close(reason);
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

  /** Removes the binding (closing the stream if given a reason) but keeps the attachment. */
  unbind(attachmentId: string, reason?: CloseReason): void {
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
    for (const id of [...this.bindings.keys()]) this.unbind(id);
    this.owners.clear();
  }
}
