import {
  EARLY_INPUT_LIMIT,
  keyTrace,
  type CloseReason,
  type TerminalHandle,
  type TerminalSink,
  type TerminalTarget,
} from '@hangar/shared';
import { randomBytes } from 'node:crypto';
import type { HangarCore } from '../core.js';
import type { LaneStarter, TakeOver, TerminalClient } from '../terminal/terminal-client.js';

const encoder = new TextEncoder();

/**
 * A session's terminal for a client in the core's own process (the hangar command with its own
 * core): the core's TerminalClient wired to the sink, as UiTerminals and CoreTerminal wire it
 * through the door, without the door. Through the door a keystroke and its echo each cross a
 * second link in this process (framing, a stream with its window and acks, a turn of the event
 * loop per crossing); here they go from the terminal to the host link and back.
 */
export class DirectTerminal implements TerminalHandle {
  readonly opened: Promise<string>;
  private client: TerminalClient | undefined;
  private early: Uint8Array[] = [];
  private earlyBytes = 0;
  private closing = false;
  private detaching: Promise<void> = Promise.resolve();

  /** With `takeOver`: resumes an attachment a running core holds (see TerminalClient's TakeOver). */
  constructor(core: HangarCore, target: TerminalTarget, sink: TerminalSink, takeOver?: TakeOver) {
    // Output and an end can come before the attach has returned (behind the host's answer): the
    // output goes to the sink at once (as CoreTerminal's does), the end waits for `attached`.
    let attached = false;
    let endedEarly: CloseReason | undefined;
    const listen = (client: TerminalClient) => {
      client.onOutput(({ data, offset }) => {
        keyTrace?.('core.output', data.length);
        // The bytes are the host link's (never reused); acked once the sink has consumed them.
        sink.write(data, () => client.ack(offset + data.length));
      });
      client.onStatus((status) => attached && sink.status(status));
      client.onEnd((reason) => (attached ? sink.ended(reason) : (endedEarly = reason)));
    };
    const size = { cols: target.cols, rows: target.rows };
    this.opened = core.attach(target.host, target.session, size, listen, takeOver).then((client) => {
      this.client = client;
      attached = true;
      sink.status('attached');
      if (endedEarly) sink.ended(endedEarly);
      for (const data of this.early.splice(0)) client.write(data);
      this.earlyBytes = 0;
      if (this.closing) this.detaching = client.detach();
      return `t-${randomBytes(8).toString('hex')}`;
    });
  }

  write(input: Uint8Array | string): void {
    if (this.closing) return;
    const data = typeof input === 'string' ? encoder.encode(input) : input;
    if (this.client) {
      keyTrace?.('core.input', data.length);
      this.client.write(data);
    } else if (this.earlyBytes + data.length <= EARLY_INPUT_LIMIT) {
      this.early.push(data);
      this.earlyBytes += data.length;
    }
  }

  /**
   * Moves keys and output onto a lane beside the host link, relayed by `start` (TerminalClient's
   * toLane): false if the terminal cannot move now; rejects, staying on its stream, if no lane.
   */
  async toLane(start: LaneStarter): Promise<boolean> {
    if (this.closing || !this.client) return false;
    return this.client.toLane(start);
  }

  resize(cols: number, rows: number): void {
    if (!this.closing) this.client?.resize(cols, rows);
  }

  redraw(): void {
    if (!this.closing) this.client?.redraw();
  }

  detach(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.client) this.detaching = this.client.detach();
  }

  /** Resolves once a detach has been answered by the host (or failed): the link may go then. */
  detached(): Promise<void> {
    return this.detaching;
  }

  dispose(): void {
    this.detach();
  }
}
