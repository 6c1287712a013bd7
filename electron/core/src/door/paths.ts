import { join } from 'node:path';

/**
 * Where a running core listens on this computer: `$HANGAR_HOME/core.sock` (a Unix socket; the
 * directory is the user's own state dir, 0700), or on Windows a named pipe named after the state
 * dir (pipes live outside the file system). The Windows path is written but untested here.
 */
export function coreSocketPath(home: string, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') {
    return `\\\\.\\pipe\\hangar-core-${nameHash(home.toLowerCase())}`;
  }
  return join(home, 'core.sock');
}

/**
 * A pipe name per state dir: FNV-1a, 64 bits, as hex. Only a name (the pipe's access is decided
 * by its ACL, not by it being hard to guess); node:crypto is not loaded for it, which costs a
 * short command more than all of this.
 */
function nameHash(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash.toString(16).padStart(16, '0');
}
