import { closeReasonError, toHangarError, type HangarError, type Mux } from '@hangar/shared';
import type { HostConnection } from '../connection/host-connection.js';

/**
 * What the jobs capability needs from a host connection. HostConnection provides it; tests pass
 * an in-memory one, so packing, upload, log follow and downloads run without a real agent.
 */
export type JobLink = Pick<HostConnection, 'call' | 'link' | 'retain' | 'on'> &
  Partial<Pick<HostConnection, 'onLink'>> & { host: { name: string } };

/** The reason a follow or a download gives the stream it leaves when the link moves to a better path. */
export const MOVED = { code: 'moved', message: 'the link moved to a better path; going on there' };

/**
 * Calls `moved` once if the connection's live link becomes another than `mux` (a path upgrade, or
 * a reconnect): a stream on a link that was moved off would otherwise run there until it ends, or
 * until the old link is retired (at most 30 s) and cuts it.
 */
export function onMovedOff(connection: JobLink, mux: Mux, moved: () => void): { dispose(): void } {
  let done = false;
  const subscription = connection.onLink?.((next) => {
    if (done || next === mux) return;
    done = true;
    moved();
  });
  return {
    dispose: () => {
      done = true;
      void subscription?.dispose();
    },
  };
}

/** Network trouble that a new link can fix; anything else is the answer. */
export function isTransient(error: unknown): boolean {
  const code = toHangarError(error).code;
  return code === 'E_UNAVAILABLE' || code === 'E_HOST_UNREACHABLE' || code === 'E_TIMEOUT';
}

/** How long a follower or a download keeps trying to get the link back before giving up. */
export const RECONNECT_PATIENCE_MS = 120_000;

/** The current link, waiting through reconnects (the caller holds `retain()`) up to a deadline. */
export async function linkWithin(connection: JobLink, deadline: number): Promise<Mux> {
  let delay = 100;
  for (;;) {
    try {
      return await connection.link();
    } catch (error) {
      if (!isTransient(error) || Date.now() + delay > deadline) throw toHangarError(error);
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 2000);
  }
}

/** Calls once more on a new link when the link dropped under the call; other errors are final. */
export async function callRetrying<T>(connection: JobLink, deadline: number, call: () => Promise<T>): Promise<T> {
  let delay = 100;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (!isTransient(error) || Date.now() + delay > deadline) throw toHangarError(error);
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 2000);
    await linkWithin(connection, deadline);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A stream closed with an error reason from the agent, as a HangarError with its code when known. */
export function streamError(what: string, reason: { code: string; message: string }): HangarError {
  return closeReasonError(reason, what);
}
