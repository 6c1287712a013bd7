import type { Disposable } from '../disposable.js';
import { toHangarError } from '../errors.js';
import type { CloseReason } from '../protocol/control.js';
import type { TerminalStatus } from '../protocol/core-api.js';
import type { CoreApiClient } from './core-api-client.js';
import { TERMINAL_OUTPUT_ACK_DELAY_MS, type LinkStream } from './stream.js';

/** What a terminal needs of the core API (a window's component tests pass a stand-in). */
export type TerminalApi = Pick<CoreApiClient, 'call' | 'on' | 'openStream'>;

/** Where a terminal's output and news go. */
export interface TerminalSink {
  /** Output in order; call `done` once it is on screen (or written out): only then is it acked. */
  write(data: Uint8Array, done: () => void): void;
  status(status: TerminalStatus): void;
  /** The stream ended, with TERMINAL_CLOSE's codes (exit_code when the session's command ended). */
  ended(reason: CloseReason): void;
}

export interface TerminalTarget {
  host: string;
  session: string;
  cols: number;
  rows: number;
}

/** A session's open terminal as its user drives it (CoreTerminal, or a core's own in its process). */
export interface TerminalHandle extends Disposable {
  /** The terminal id once open; rejects if it could not be opened (the sink is not told). */
  readonly opened: Promise<string>;
  /** Input: sent now when open, else kept (up to EARLY_INPUT_LIMIT) until it is. */
  write(input: Uint8Array | string): void;
  resize(cols: number, rows: number): void;
  /** Asks tmux to repaint the screen (cosmetic: failures ignored). */
  redraw(): void;
  /** Detaches: the session keeps running, the sink's `ended` says 'detached' after the output before it. */
  detach(): void;
}

/** Keystrokes typed before the terminal is open are kept up to this much (a big paste is cut). */
export const EARLY_INPUT_LIMIT = 64 * 1024;

const encoder = new TextEncoder();

/**
 * A session's terminal through the core, for any client of it (the window, the hangar command):
 * a stream of ours for output and input, `terminal.open` naming it, and `terminal.status` events.
 * Usable at once: what is typed before the core has opened it is kept and sent once it has (the
 * one place early keystrokes wait; while a host link is down, the core's TerminalClient holds
 * them). Output is acked only once the sink says it is consumed, so a slow screen slows the host.
 */
export class CoreTerminal implements TerminalHandle {
  /** The terminal id once open; rejects if it could not be opened (the sink is not told). */
  readonly opened: Promise<string>;
  private terminalId: string | undefined;
  private early: Uint8Array[] = [];
  private earlyBytes = 0;
  private closing = false;
  /**
   * The answer to terminal.open settles a promise (a microtask), while the frames behind it in the
   * same delivery (statuses, even the stream's end) are handled at once: kept until the id is known.
   */
  private beforeOpen: { statuses: { terminal_id: string; status: TerminalStatus }[]; end?: CloseReason } = {
    statuses: [],
  };
  private readonly stream: LinkStream;
  private readonly statusSubscription: Disposable;

  constructor(
    private readonly api: TerminalApi,
    target: TerminalTarget,
    sink: TerminalSink,
  ) {
    const stream = api.openStream();
    // The acks of echoes go with the next keystroke (the core then acks the host the same way).
    stream.ackDelayMs = TERMINAL_OUTPUT_ACK_DELAY_MS;
    this.stream = stream;
    stream.onData((data, offset) => {
      // Copy: the frame buffer may be reused once this returns.
      const bytes = data.slice();
      sink.write(bytes, () => {
        if (!stream.closed) stream.ack(offset + bytes.length);
      });
    });
    stream.onClose((reason) => {
      if (this.terminalId === undefined) {
        this.beforeOpen.end = reason;
        return;
      }
      void this.statusSubscription.dispose();
      sink.ended(reason);
    });
    this.statusSubscription = api.on('terminal.status', (event) => {
      if (this.terminalId === undefined) {
        if (this.beforeOpen.statuses.length < 16) this.beforeOpen.statuses.push(event);
      } else if (event.terminal_id === this.terminalId) {
        sink.status(event.status);
      }
    });
    this.opened = api.call('terminal.open', { ...target, stream_id: stream.id }).then(
      ({ terminal_id }) => {
        this.terminalId = terminal_id;
        const { statuses, end } = this.beforeOpen;
        this.beforeOpen = { statuses: [] };
        for (const event of statuses) if (event.terminal_id === terminal_id) sink.status(event.status);
        for (const data of this.early.splice(0)) if (!this.closing && !stream.closed) stream.write(data);
        this.earlyBytes = 0;
        if (end) {
          void this.statusSubscription.dispose();
          sink.ended(end);
        } else if (this.closing) void this.api.call('terminal.close', { terminal_id }).catch(() => undefined);
        return terminal_id;
      },
      (error: unknown) => {
        void this.statusSubscription.dispose();
        stream.close({ code: 'closed', message: 'terminal.open failed' }, { flush: false });
        throw toHangarError(error);
      },
    );
  }

  /** Input: sent now when open, else kept (up to EARLY_INPUT_LIMIT) until it is. */
  write(input: Uint8Array | string): void {
    if (this.closing) return;
    const data = typeof input === 'string' ? encoder.encode(input) : input;
    if (this.terminalId !== undefined) {
      if (!this.stream.closed) this.stream.write(data);
    } else if (this.earlyBytes + data.length <= EARLY_INPUT_LIMIT) {
      this.early.push(data);
      this.earlyBytes += data.length;
    }
  }

  resize(cols: number, rows: number): void {
    if (this.closing || this.terminalId === undefined) return;
    // Lost with the link, a resize is re-sent by the core's next attach (which carries the size).
    void this.api.call('terminal.resize', { terminal_id: this.terminalId, cols, rows }).catch(() => undefined);
  }

  /** Asks tmux to repaint the screen, e.g. after a notice was drawn over it (cosmetic: failures ignored). */
  redraw(): void {
    if (this.closing || this.terminalId === undefined) return;
    void this.api.call('terminal.redraw', { terminal_id: this.terminalId }).catch(() => undefined);
  }

  /** Detaches: the session keeps running, the stream ends with 'detached' after the output before it. */
  detach(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.terminalId !== undefined) {
      void this.api.call('terminal.close', { terminal_id: this.terminalId }).catch(() => undefined);
    }
  }

  /** Detaches and stops reading at once (a closed tab). */
  dispose(): void {
    this.detach();
    void this.statusSubscription.dispose();
    this.stream.close({ code: 'closed', message: 'terminal closed' }, { flush: false });
  }
}
