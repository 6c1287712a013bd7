import { createHash } from 'node:crypto';
import { join } from 'node:path';

/**
 * Where a running core listens on this computer: `$HANGAR_HOME/core.sock` (a Unix socket; the
 * directory is the user's own state dir, 0700), or on Windows a named pipe named after the state
 * dir (pipes live outside the file system). The Windows path is written but untested here.
 */
export function coreSocketPath(home: string, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') {
    const tag = createHash('sha256').update(home.toLowerCase()).digest('hex').slice(0, 16);
    return `\\\\.\\pipe\\hangar-core-${tag}`;
  }
  return join(home, 'core.sock');
}
