import {
  CoreTerminal,
  followCoreJobLog,
  type CloseReason,
  type Disposable,
  type TerminalStatus as LinkStatus,
} from '@hangar/shared';
import type { CoreApi } from './core-client.js';

/** A terminal pane's state: 'connecting' until the core has opened it, then what its link does. */
export type TerminalStatus = 'connecting' | LinkStatus;

/** Where output goes; `done` is called once the bytes are on screen, which is when we ack them. */
export interface TerminalSink {
  write(data: Uint8Array, done: () => void): void;
  status(status: TerminalStatus): void;
  ended(reason: CloseReason): void;
}

export interface TerminalConnection extends Disposable {
  /** Resolves once the core has opened it (input typed before then is kept and sent). */
  readonly opened: Promise<string>;
  input(text: string): void;
  resize(cols: number, rows: number): void;
}

/**
 * Opens host/session on a stream of ours, usable at once (shared's CoreTerminal, as the hangar
 * command's attach). Output is acked only after the sink rendered it.
 */
export function openTerminal(
  api: CoreApi,
  target: { host: string; session: string; cols: number; rows: number },
  sink: TerminalSink,
): TerminalConnection {
  const terminal = new CoreTerminal(api, target, sink);
  const opened = terminal.opened.then((id) => {
    sink.status('attached');
    return id;
  });
  return {
    opened,
    input: (text) => terminal.write(text),
    resize: (cols, rows) => terminal.resize(cols, rows),
    dispose: () => terminal.dispose(),
  };
}

/** Follows a job's log from the start; the stream ends with {code: 'log_end', exit_code}. */
export async function followJobLog(
  api: CoreApi,
  job: { host: string; id: string },
  sink: Omit<TerminalSink, 'status'>,
): Promise<Disposable & { attempt: number }> {
  const log = await followCoreJobLog(
    api,
    { host: job.host, id: job.id, from: 0, follow: true },
    { data: (data, _attempt, done) => sink.write(data, done) },
  );
  void log.ended.then((reason) => sink.ended(reason));
  return log;
}
