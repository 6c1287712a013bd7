import { HangarError } from '@hangar/shared';

/** Commander accumulator for repeatable options (`--env A=1 --env B=2`). */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `--env KEY=VALUE` pairs; the value may contain `=`. */
export function parseEnv(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new HangarError('E_BAD_REQUEST', `--env ${pair}: expected KEY=VALUE`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}
