import { readFileSync } from 'node:fs';

/** The relay package's version (relay.info, /healthz, logs). */
export const RELAY_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
