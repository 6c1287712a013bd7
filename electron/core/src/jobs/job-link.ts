import {
  BULK_STREAM_WINDOW,
  closeReasonError,
  toHangarError,
  type CloseReason,
  type HangarError,
  type LinkStream,
  type Mux,
} from '@hangar/shared';
import type { HostConnection } from '../connection/host-connection.js';

/**
 * What the jobs capability needs from a host connection. HostConnection provides it; tests pass
 * an in-memory one, so packing, upload, log follow and downloads run without a real agent.
 */
export type JobLink = Pick<HostConnection, 'call' | 'link' | 'retain' | 'on'> &
  Partial<Pick<HostConnection, 'onLink' | 'laneTarget'>> & { host: { name: string } };

/** The reason a follow or a download gives the stream it leaves when the link moves to a better path. */
export const MOVED = { code: 'moved', message: 'the link moved to a better path; going on there' };

/**
 * A stream for bytes the agent sends at the reader's pace (a job log, an artifact), opened on
 * `mux` before the request that names it (the agent may write right behind its answer); the
 * caller acks what it has written out, and keeps no view of the bytes it acked: their read
 * buffers go round again (LinkStream.releasesDataOnAck). Once the connection's live link becomes
 * another than `mux` (a path upgrade, or a reconnect), `beforeMove` runs and the stream is closed
 * with MOVED: a stream on a link that was moved off would otherwise run there until it ends, or
 * until the old link is retired (at most 30 s) and cuts it. The caller then asks again on the new
 * link.
 */
export function openPulledStream(
  connection: JobLink,
  mux: Mux,
  recvOffset: number,
  beforeMove?: () => void,
): { stream: LinkStream; closed: Promise<CloseReason>; movedOff: () => boolean } {
  const stream = mux.openStream({ recvOffset, window: BULK_STREAM_WINDOW });
  stream.autoAck = false;
  stream.releasesDataOnAck = true;
  const closed = new Promise<CloseReason>((resolve) => stream.onClose(resolve));
  let movedOff = false;
  const subscription = connection.onLink?.((next) => {
    if (movedOff || next === mux || stream.closed) return;
    movedOff = true;
    beforeMove?.();
    stream.close(MOVED, { flush: false });
  });
  void closed.then(() => subscription?.dispose());
  return { stream, closed, movedOff: () => movedOff };
}

/** Network trouble that a new link can fix; anything else is the answer. */
export function isTransient(error: unknown): boolean {
  const code = toHangarError(error).code;
  return code === 'E_UNAVAILABLE' || code === 'E_HOST_UNREACHABLE' || code === 'E_TIMEOUT';
}

/** How long a follower or a download keeps trying to get the link back before giving up. */
export const RECONNECT_PATIENCE_MS = 120_000;

/**
 * The current link, waiting through reconnects (the caller holds `retain()`) up to a deadline, or
 * until `signal` fires (then it rejects with the signal's reason and tries no more).
 */
export async function linkWithin(connection: JobLink, deadline: number, signal?: AbortSignal): Promise<Mux> {
  let delay = 100;
  for (;;) {
    signal?.throwIfAborted();
    try {
      return await untilAborted(connection.link(), signal);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!isTransient(error) || Date.now() + delay > deadline) throw toHangarError(error);
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 2000);
  }
}

/**
 * Runs `attempt` until it succeeds, again on the next link (waited for up to RECONNECT_PATIENCE_MS)
 * after each failure a new link can fix, giving up after `tries` failures in a row; a failure that
 * `progressed` says moved forward (more bytes written, a move to a better path) starts the count
 * again. Other errors are final.
 */
export async function retryOnNewLink<T>(
  connection: JobLink,
  tries: number,
  attempt: () => Promise<T>,
  progressed: (error: unknown) => Promise<boolean> = async () => false,
): Promise<T> {
  for (let failed = 1; ; failed++) {
    try {
      return await attempt();
    } catch (error) {
      if (await progressed(error)) failed = 0;
      if (!isTransient(error) || failed >= tries) throw toHangarError(error);
      await linkWithin(connection, Date.now() + RECONNECT_PATIENCE_MS);
    }
  }
}

/**
 * Calls once more on a new link when the link dropped under the call; other errors are final.
 * Once `signal` fires it calls no more and rejects with the signal's reason at once, whether it
 * waits for an answer, for the link, or between tries.
 */
export async function callRetrying<T>(
  connection: JobLink,
  deadline: number,
  call: () => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  let delay = 100;
  for (;;) {
    signal?.throwIfAborted();
    try {
      return await untilAborted(call(), signal);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!isTransient(error) || Date.now() + delay > deadline) throw toHangarError(error);
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 2000);
    await linkWithin(connection, deadline, signal);
  }
}

/** `ms` later; with `signal`, rejects with its reason as soon as it fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return untilAborted(new Promise<void>((resolve) => setTimeout(resolve, ms)), signal);
}

/**
 * `work`'s outcome, or the signal's reason as soon as it fires (`work` goes on, unobserved: a
 * call's answer, a link that comes up, is left to whoever else holds it).
 */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  if (signal.aborted) {
    work.catch(() => undefined); // abandoned: its failure is nobody's to report
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A stream closed with an error reason from the agent, as a HangarError with its code when known. */
export function streamError(what: string, reason: { code: string; message: string }): HangarError {
  return closeReasonError(reason, what);
}
