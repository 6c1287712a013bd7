import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** $HANGAR_HOME, default ~/.hangar: the device key, the host registry and the embedded agent's data. */
export function hangarHome(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['HANGAR_HOME'];
  return fromEnv && fromEnv.length > 0 ? resolve(fromEnv) : join(homedir(), '.hangar');
}
