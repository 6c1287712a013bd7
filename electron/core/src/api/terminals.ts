import {
  HangarError,
  keyTrace,
  TERMINAL_INPUT_ACK_DELAY_MS,
  type CoreParsedParams,
  type Disposable,
  type Mux,
  type TerminalStatus,
} from '@hangar/shared';
import { randomBytes } from 'node:crypto';
import type { HangarCore } from '../core.js';
import type { TerminalClient } from '../terminal/terminal-client.js';
import { checkUiStreamId, UiStream } from './ui-stream.js';

/** How long terminal.attachment waits for the host to acknowledge the keys typed so far. */
const INPUT_SETTLE_MS = 2_000;

/** A client connection's open terminals: TerminalClients (which survive host link drops) piped to its streams. */
export class UiTerminals implements Disposable {
  private readonly terminals = new Map<
    string,
    Pick<TerminalClient, 'detach' | 'resize' | 'redraw' | 'attachment' | 'inputSettled'>
  >();
  /** The host's offset of each terminal's first byte on its stream (terminal.attachment). */
  private readonly firstOffsets = new Map<string, number>();

  constructor(
    private readonly core: HangarCore,
    private readonly mux: Mux,
    private readonly publishStatus: (terminalId: string, status: TerminalStatus) => void,
  ) {}

  /**
   * Attaches to the session and returns the terminal id with an `after` that opens the core's
   * end of the UI's stream once the answer is out. Output waits (unacked, so the host stops at
   * its credit window) until then.
   */
  async open(params: CoreParsedParams<'terminal.open'>): Promise<{ terminalId: string; after: () => void }> {
    checkUiStreamId(this.mux, params.stream_id);
    const terminalId = `t-${randomBytes(8).toString('hex')}`;
    // Keys are acked on their echo, with no timer per key (as the agent acks them).
    const ui = new UiStream(this.mux, params.stream_id, {}, TERMINAL_INPUT_ACK_DELAY_MS);
    // Output and an end can come before the attach has returned (behind the host's answer): the
    // UI stream holds them until open(). Statuses are published from then on, as `after` does.
    let attached = false;
    let ended = false;
    let firstOffset: number | undefined;
    const client = await this.core.attach(
      params.host,
      params.session,
      { cols: params.cols, rows: params.rows },
      (client) => {
        client.onOutput(({ data, offset }) => {
          keyTrace?.('core.output', data.length);
          firstOffset ??= offset;
          ui.write(data, () => client.ack(offset + data.length));
        });
        client.onStatus((status) => attached && this.publishStatus(terminalId, status));
        client.onEnd((reason) => {
          ended = true;
          this.terminals.delete(terminalId);
          this.firstOffsets.delete(terminalId);
          ui.end(reason);
        });
      },
    );
    attached = true;
    if (!ended) {
      this.terminals.set(terminalId, client);
      // No output yet: the first byte the stream will carry is the next the client expects.
      this.firstOffsets.set(terminalId, firstOffset ?? client.offset);
    }
    ui.onGone(() => {
      // The UI closed the tab or went away: free the host's tmux client (the session keeps running).
      this.terminals.delete(terminalId);
      this.firstOffsets.delete(terminalId);
      void client.detach();
    });
    return {
      terminalId,
      after: () => {
        ui.open();
        if (!this.terminals.has(terminalId)) return;
        ui.onData((data) => {
          keyTrace?.('core.input', data.length);
          client.write(data);
        });
        this.publishStatus(terminalId, 'attached');
      },
    };
  }

  resize(terminalId: string, cols: number, rows: number): void {
    this.get(terminalId).resize(cols, rows);
  }

  redraw(terminalId: string): void {
    this.get(terminalId).redraw();
  }

  /**
   * What the hangar command needs to resume the terminal's attachment on a link of its own (see
   * terminal.attachment): its id, and the host's offset of the first byte the terminal's stream
   * carried (the command adds what it has read). Answered only once the host has taken every key
   * written here (the command holds the keys typed from the moment it asks): a key still on its
   * way through this core when the host switches to the command's link would be lost.
   */
  async attachment(terminalId: string): Promise<{ attachment_id: string; offset: number }> {
    const terminal = this.get(terminalId);
    if (!(await terminal.inputSettled(INPUT_SETTLE_MS))) {
      throw new HangarError(
        'E_UNAVAILABLE',
        `keys typed into terminal ${terminalId} have not all reached the host yet (or its link is down); it stays on this core`,
      );
    }
    return { attachment_id: terminal.attachment, offset: this.firstOffsets.get(terminalId) ?? 0 };
  }

  async close(terminalId: string): Promise<void> {
    const terminal = this.get(terminalId);
    this.terminals.delete(terminalId);
    this.firstOffsets.delete(terminalId);
    await terminal.detach();
  }

  private get(terminalId: string) {
    const terminal = this.terminals.get(terminalId);
    if (!terminal) {
      throw new HangarError(
        'E_NOT_FOUND',
        `terminal_id: no open terminal ${terminalId}; open it again with terminal.open`,
      );
    }
    return terminal;
  }

  async dispose(): Promise<void> {
    const open = [...this.terminals.values()];
    this.terminals.clear();
    await Promise.all(open.map((terminal) => terminal.detach()));
  }
}
