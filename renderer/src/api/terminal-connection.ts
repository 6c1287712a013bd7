import { type CloseReason, type Disposable, type LinkStream } from '@hangar/shared';
import type { CoreApi } from './core-client.js';

export type TerminalStatus = 'connecting' | 'attached' | 'reconnecting' | 'resumed' | 'skipped';

/** Where output goes; `done` is called once the bytes are on screen, which is when we ack them. */
export interface TerminalSink {
  write(data: Uint8Array, done: () => void): void;
  status(status: TerminalStatus): void;
  ended(reason: CloseReason): void;
}

export interface TerminalConnection extends Disposable {
  readonly terminalId: string;
  input(text: string): void;
  resize(cols: number, rows: number): void;
}

const encoder = new TextEncoder();

/** Opens host/session on a stream of ours. Output is acked only after the sink rendered it. */
export async function openTerminal(
  api: CoreApi,
  target: { host: string; session: string; cols: number; rows: number },
  sink: TerminalSink,
): Promise<TerminalConnection> {
  const stream = api.openStream();
  wireOutput(stream, sink);
  let terminalId = '';
  const statusSubscription = api.on('terminal.status', (event) => {
    if (event.terminal_id === terminalId) sink.status(event.status);
  });
  try {
    ({ terminal_id: terminalId } = await api.call('terminal.open', { ...target, stream_id: stream.id }));
  } catch (error) {
    void statusSubscription.dispose();
    stream.close({ code: 'closed', message: 'terminal.open failed' }, { flush: false });
    throw error;
  }
  sink.status('attached');
  let closing = false;
  stream.onClose(() => void statusSubscription.dispose());
  return {
    terminalId,
    input(text) {
      if (!closing) stream.write(encoder.encode(text));
    },
    resize(cols, rows) {
      if (!closing) void api.call('terminal.resize', { terminal_id: terminalId, cols, rows }).catch(() => undefined);
    },
    dispose() {
      if (closing) return;
      closing = true;
      void statusSubscription.dispose();
      void api.call('terminal.close', { terminal_id: terminalId }).catch(() => undefined);
      stream.close({ code: 'closed', message: 'tab closed' }, { flush: false });
    },
  };
}

/** Follows a job's log from the start; the stream ends with {code: 'log_end', exit_code}. */
export async function followJobLog(
  api: CoreApi,
  job: { host: string; id: string },
  sink: Omit<TerminalSink, 'status'>,
): Promise<Disposable & { attempt: number }> {
  const stream = api.openStream();
  wireOutput(stream, sink);
  try {
    const { attempt } = await api.call('jobs.logs', {
      host: job.host,
      id: job.id,
      from: 0,
      follow: true,
      stream_id: stream.id,
    });
    return { attempt, dispose: () => stream.close({ code: 'closed', message: 'log closed' }, { flush: false }) };
  } catch (error) {
    stream.close({ code: 'closed', message: 'jobs.logs failed' }, { flush: false });
    throw error;
  }
}

function wireOutput(stream: LinkStream, sink: Omit<TerminalSink, 'status'>): void {
  stream.onData((data, offset) => {
    // Copy: the frame buffer may be reused; ack after render so a flood cannot outrun the screen.
    const bytes = data.slice();
    sink.write(bytes, () => {
      if (!stream.closed) stream.ack(offset + bytes.length);
    });
  });
  stream.onClose((reason) => sink.ended(reason));
}
