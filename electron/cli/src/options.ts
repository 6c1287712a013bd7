import { HangarError } from '@hangar/shared';

// Option parsers the commands share. No schema here: session and run load this module, and a
// schema would bring zod into their start-up (issue 18); preview parses its ports itself.

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

/**
 * `--secret KEY=VALUE`, or `--secret KEY` for the value of KEY in this process's environment (so
 * the value need not be typed where shell history keeps it).
 */
export function parseSecrets(items: string[], env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const secrets: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq === 0) throw new HangarError('E_BAD_REQUEST', `--secret ${item}: expected KEY=VALUE or KEY`);
    if (eq > 0) {
      secrets[item.slice(0, eq)] = item.slice(eq + 1);
      continue;
    }
    const value = env[item];
    if (value === undefined) {
      throw new HangarError(
        'E_BAD_REQUEST',
        `--secret ${item}: ${item} is not set in this environment; export it first, or give --secret ${item}=VALUE`,
      );
    }
    secrets[item] = value;
  }
  return secrets;
}
