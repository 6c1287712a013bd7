import { toHangarError, type Mux } from '@hangar/shared';
import type { HangarCore } from '../core.js';
import { checkUiStreamId, UiStream } from './ui-stream.js';

interface LogParams {
  host: string;
  id: string;
  from: number;
  follow: boolean;
  stream_id: number;
}

/**
 * Streams a job's log onto the UI's stream: answers with the attempt as soon as the host names
 * it, then bytes (acked to the host only once the UI acked them), then a close with
 * {code: 'log_end', exit_code}, or {code: <error code>, message} if following failed.
 */
export async function openJobLog(
  core: HangarCore,
  mux: Mux,
  params: LogParams,
): Promise<{ attempt: number; after: () => void }> {
  checkUiStreamId(mux, params.stream_id);
  const ui = new UiStream(mux, params.stream_id);
  let named: (attempt: number) => void = () => undefined;
  const attemptKnown = new Promise<number>((resolve) => (named = resolve));
  // A UI that closes the log (or goes away) stops the host sending it.
  const stop = new AbortController();
  ui.onGone(() => stop.abort());
  const following = core.jobs.followLogs(
    params.host,
    params.id,
    { from: params.from, follow: params.follow, signal: stop.signal },
    {
      attempt: (attempt) => named(attempt),
      data: (chunk, consumed) => ui.write(chunk.data, consumed),
    },
  );
  following.then(
    (end) => {
      named(end.attempt);
      ui.end({
        code: 'log_end',
        message: params.follow ? 'the attempt ended' : 'end of the log so far',
        exit_code: end.exitCode,
      });
    },
    (error: unknown) => {
      const failure = toHangarError(error);
      ui.end({ code: failure.code, message: failure.message });
    },
  );
  // Whichever comes first: the host names the attempt, or the follow fails (then the call fails).
  const attempt = await Promise.race([attemptKnown, following.then((end) => end.attempt)]);
  return { attempt, after: () => ui.open() };
}
