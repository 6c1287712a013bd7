import { BULK_FRAME_BYTES, BULK_STREAM_WINDOW, toHangarError, type CoreParsedParams, type Mux } from '@hangar/shared';
import type { HangarCore } from '../core.js';
import type { PublishCoreEvent } from './connection.js';
import { checkUiStreamId, UiStream } from './ui-stream.js';

/**
 * Streams a job's log onto the client's stream: answers with the attempt as soon as the host
 * names it, then bytes (acked to the host only once the client acked them), then a close with
 * {code: 'log_end', exit_code}, or {code: <error code>, message} if following failed. Each
 * attempt's start (`jobs.log_attempt`, with its offset on the stream) and a dropped host link
 * (`jobs.log_link`) are events to the calling connection, sent before the bytes they concern.
 */
export async function openJobLog(
  core: HangarCore,
  mux: Mux,
  params: CoreParsedParams<'jobs.logs'>,
  publish: PublishCoreEvent,
): Promise<{ attempt: number; after: () => void }> {
  checkUiStreamId(mux, params.stream_id);
  const streamId = params.stream_id;
  // A log is bulk: with the terminal's window it would be capped near 40 MB/s (window / round trip).
  const ui = new UiStream(mux, streamId, { window: BULK_STREAM_WINDOW, maxFrameBytes: BULK_FRAME_BYTES });
  let named: (attempt: number) => void = () => undefined;
  const attemptKnown = new Promise<number>((resolve) => (named = resolve));
  // A client that closes the log (or goes away) stops the host sending it.
  const stop = new AbortController();
  ui.onGone(() => stop.abort());
  const following = core.jobs.followLogs(
    params.host,
    params.id,
    {
      ...(params.attempt !== undefined ? { attempt: params.attempt } : {}),
      from: params.from,
      follow: params.follow,
      throughRetries: params.through_retries,
      signal: stop.signal,
    },
    {
      attempt: (attempt) => {
        publish('jobs.log_attempt', { stream_id: streamId, attempt, stream_offset: ui.offset });
        named(attempt);
      },
      // The bytes may be in a pooled read buffer of the host's link: lent to the UI's stream, not
      // copied (a copy per 16 KiB read is external memory that V8 collects by marking the heap).
      data: (chunk, consumed) => ui.write(chunk.data, consumed, { lend: true }),
      // The event overtakes bytes still queued on the stream: its offset says which come first.
      status: (status) => publish('jobs.log_link', { stream_id: streamId, status, stream_offset: ui.offset }),
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
