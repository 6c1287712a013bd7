import { closeSync, lstatSync, mkdirSync, openSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { HangarError } from '@hangar/shared';
import { readRunFile } from './run-file.js';

/** The longest Unix socket path macOS takes (Linux: 108). */
const MAX_SOCKET_PATH = 103;

/**
 * One agent per data dir. A second one (an agent started by hand while the service runs, or one
 * left running by a supervisor that was killed) took the first one's running jobs for lost at its
 * start, and killed them, before it failed to listen on the same port. The lock is a Unix socket
 * in `<data>/run/` that the agent listens on while it lives: one that connects belongs to a live
 * agent; one that refuses was left by a dead one and is taken over. Waits up to `waitMs` for an
 * agent that is stopping, then refuses with what to do. A path too long for a socket is reached
 * on Linux through a descriptor of its directory (`/proc/self/fd/N/agent.lock`); elsewhere (macOS)
 * such a data dir goes without the lock.
 */
export async function lockDataDir(dataDir: string, waitMs = 5000): Promise<Server | undefined> {
  if (process.platform === 'win32') return undefined;
  const dir = join(dataDir, 'run');
  const path = join(dir, 'agent.lock');
  let address = path;
  let dirFd: number | undefined;
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    if (process.platform !== 'linux') return undefined;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Held while the server lives: closing it, the server removes its file by this name.
    dirFd = openSync(dir, 'r');
    address = `/proc/self/fd/${dirFd}/agent.lock`;
  }
  try {
    const server = await lockAt(dataDir, path, address, waitMs);
    const fd = dirFd;
    if (fd !== undefined) server.once('close', () => closeSync(fd));
    dirFd = undefined;
    return server;
  } finally {
    if (dirFd !== undefined) closeSync(dirFd);
  }
}

/** The lock at `path`, listened on and asked by `address` (the same file, maybe by a shorter name). */
async function lockAt(dataDir: string, path: string, address: string, waitMs: number): Promise<Server> {
  mkdirSync(join(dataDir, 'run'), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + waitMs;
  for (;;) {
    const server = await listenAt(address);
    if (server) return server;
    const asked = identity(path);
    if (!(await answers(address))) {
      // Left by an agent that died: take it over, unless another agent starting now took it over
      // first (then the file is its live socket, and removing it would let both run).
      if (asked !== undefined && identity(path) === asked) unlinkSync(path);
      continue;
    }
    if (Date.now() >= deadline) {
      const running = readRunFile(dataDir);
      const who = running ? `hangar-agent (pid ${running.pid}, at ${running.address})` : 'hangar-agent';
      throw new HangarError(
        'E_EXISTS',
        `another ${who} serves ${dataDir}; stop it first (hangar-agent status says how it runs), or give this one another --data`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function listenAt(path: string): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer((connection) => connection.destroy());
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') resolve(undefined);
      else reject(error);
    });
    server.listen(path, () => {
      // It must not keep a stopping agent alive.
      server.unref();
      resolve(server);
    });
  });
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Which file the path names, or undefined when there is none. With its change time: a socket made
 * in place of a removed one may get the same inode number.
 */
function identity(path: string): string | undefined {
  try {
    const stat = lstatSync(path, { bigint: true });
    return `${stat.dev}:${stat.ino}:${stat.ctimeNs}`;
  } catch {
    return undefined;
  }
}
