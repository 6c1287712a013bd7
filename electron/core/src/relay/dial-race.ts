import { HangarError, toHangarError } from '@hangar/shared';

/**
 * One way to a host in a race (happy-eyeballs style): it starts `afterMs` after the race began,
 * or at once when every way before it has failed, whichever comes first. `dial` must stop when
 * `signal` aborts (a WebRTC attempt closes its connection mid-ICE) or the race closes what it
 * resolves with later.
 */
export interface RaceWay<T> {
  name: string;
  afterMs: number;
  /** Checked when `afterMs` is up: true leaves this way for when every way before it failed. */
  deferred?: () => boolean;
  dial(signal: AbortSignal): Promise<T>;
}

export interface RaceOptions<T> {
  /** Closes a link that opened after another won (the loser). */
  close(loser: T): void;
  /**
   * A failure that ends the race at once, whatever the others do (a host key that is not the
   * pinned one, a limit): the answer, as a sequential dial gives it.
   */
  final(error: HangarError): boolean;
}

export interface RaceLost {
  name: string;
  error: HangarError;
}

/**
 * Every way failed; `failures` in the order the ways were listed (those never started are left
 * out). A HangarError (host unreachable, for now) so that a race inside another counts as one
 * transient failure there.
 */
export class RaceFailed extends HangarError {
  constructor(readonly failures: RaceLost[]) {
    super('E_HOST_UNREACHABLE', failures.map((f) => `${f.name}: ${f.error.message}`).join('; ') || 'no way to try');
  }

  /** The failures of this race and of the races inside it, each once. */
  flat(): RaceLost[] {
    const seen = new Set<HangarError>();
    const out: RaceLost[] = [];
    for (const lost of this.failures) {
      for (const each of lost.error instanceof RaceFailed ? lost.error.flat() : [lost]) {
        if (seen.has(each.error)) continue;
        seen.add(each.error);
        out.push(each);
      }
    }
    return out;
  }
}

/**
 * Races the ways to a host: the first that opens wins, the others are aborted (or closed when
 * they open anyway). Resolves with the winner and its way's name; rejects with the first final
 * failure, or with RaceFailed once all failed.
 */
export function raceDials<T>(ways: RaceWay<T>[], options: RaceOptions<T>): Promise<{ value: T; name: string }> {
  const aborts = ways.map(() => new AbortController());
  const failures = new Map<number, HangarError>();
  const started = new Set<number>();
  const timers: NodeJS.Timeout[] = [];
  let done = false;
  return new Promise((resolve, reject) => {
    /** The race is over: ways not started never will, those still dialing (all but `winner`) are aborted. */
    const finish = (winner?: number) => {
      done = true;
      for (const timer of timers) clearTimeout(timer);
      aborts.forEach((abort, i) => i !== winner && abort.abort());
    };
    const start = (index: number) => {
      if (done || started.has(index)) return;
      started.add(index);
      const way = ways[index]!;
      let dialing: Promise<T>;
      try {
        dialing = way.dial(aborts[index]!.signal);
      } catch (error) {
        dialing = Promise.reject(error);
      }
      dialing.then(
        (value) => {
          if (done) {
            options.close(value);
            return;
          }
          finish(index);
          resolve({ value, name: way.name });
        },
        (error: unknown) => {
          if (done) return;
          const failure = toHangarError(error);
          failures.set(index, failure);
          if (options.final(failure)) {
            finish();
            reject(failure);
            return;
          }
          // Every way started so far failed: the next one starts now, not at its time.
          if ([...started].every((i) => failures.has(i))) {
            const next = ways.findIndex((_, i) => !started.has(i));
            if (next >= 0) {
              start(next);
              return;
            }
            finish();
            reject(
              new RaceFailed(
                [...failures].sort(([a], [b]) => a - b).map(([i, e]) => ({ name: ways[i]!.name, error: e })),
              ),
            );
          }
        },
      );
    };
    ways.forEach((way, index) => {
      if (index === 0 || way.afterMs <= 0) start(index);
      else
        timers.push(
          setTimeout(() => {
            if (!way.deferred?.()) start(index);
          }, way.afterMs),
        );
    });
    if (ways.length === 0) {
      finish();
      reject(new RaceFailed([]));
    }
  });
}
