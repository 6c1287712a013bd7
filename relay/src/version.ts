import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** The relay package's version (relay.info, /healthz, logs). */
export const RELAY_VERSION: string = z
  .object({ version: z.string() })
  .parse(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))).version;
