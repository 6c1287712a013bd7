import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';

/**
 * The agent's tmux socket name for a data dir, from its resolved path (the caller resolves it:
 * the agent with realpath, an installer for a directory that does not exist yet by hand). One
 * server per data dir; a name (-L), not a path, keeps it under tmux's own per-user directory.
 */
export function tmuxSocketNameOf(resolvedDataDir: string): string {
  const hash = bytesToHex(sha256(new TextEncoder().encode(resolvedDataDir)));
  return `hangar-${hash.slice(0, 12)}`;
}
