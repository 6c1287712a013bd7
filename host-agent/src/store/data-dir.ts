import { chmodSync, mkdirSync, statSync } from 'node:fs';
import type { Logger } from 'pino';

/**
 * The data dir holds the agent's keys, its database and the key that seals job secrets: only its
 * owner may enter it. Made 0700; one that exists with looser permissions (made by hand, by an
 * older version, by a umask) is tightened at start, and the log says so.
 */
export function secureDataDir(dataDir: string, logger: Logger): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const mode = statSync(dataDir).mode & 0o777;
  if ((mode & 0o077) === 0) return;
  chmodSync(dataDir, 0o700);
  logger.warn(
    { dataDir, was: mode.toString(8).padStart(4, '0'), now: '0700' },
    'the data directory was open to other users; tightened it to 0700',
  );
}
