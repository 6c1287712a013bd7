import { toHangarError, type HangarError, type HostFailure } from '@hangar/shared';

export type HostAnswer<T> = { host: string; ok: true; value: T } | { host: string; ok: false; error: HangarError };

/** Asks every host at once; each answer or failure is a value, in the order of `hosts`. */
export function askEachHost<T>(hosts: readonly string[], ask: (host: string) => Promise<T>): Promise<HostAnswer<T>[]> {
  return Promise.all(
    hosts.map(async (host): Promise<HostAnswer<T>> => {
      try {
        return { host, ok: true, value: await ask(host) };
      } catch (error) {
        return { host, ok: false, error: toHangarError(error) };
      }
    }),
  );
}

/**
 * A listing of one host or of every paired host, as sessions.list, jobs.list and previews.list
 * give it. Named, the host's failure is the caller's error; over every host, a host that cannot be
 * reached is listed empty with its error (`hangar … ls` reports it and exits 5), the rest as usual.
 */
export async function listOnHosts<T extends object>(
  hosts: readonly string[],
  only: string | undefined,
  ask: (host: string) => Promise<T>,
  empty: T,
): Promise<(T & { host: string; error: HostFailure | null })[]> {
  if (only !== undefined) return [{ host: only, ...(await ask(only)), error: null }];
  const answers = await askEachHost(hosts, ask);
  return answers.map((answer) =>
    answer.ok
      ? { host: answer.host, ...answer.value, error: null }
      : { host: answer.host, ...empty, error: { code: answer.error.code, message: answer.error.message } },
  );
}
