import { HangarError, type Disposable } from '@hangar/shared';
import { chmodSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { CoreApiServer } from '../api/index.js';
import { reachRunningCore } from './connect.js';
import { protocolFingerprint } from './fingerprint.js';
import { DOOR_VERSION, readGreeting, sendGreeting, type CoreGreeting } from './greeting.js';
import { isClientGreeting } from './greeting-schemas.js';
import { coreSocketPath } from './paths.js';
import { SocketFrameTransport } from './socket-transport.js';

/** A client that connects and says nothing is dropped after this long. */
const CLIENT_GREETING_MS = 5_000;
/** Unix sockets: sun_path is 108 bytes on Linux, 104 on macOS. */
const MAX_SOCKET_PATH_BYTES = 103;

export interface LocalDoorOptions {
  /** The running core's API server (live): the same procedures, schemas and host links the UIs use. */
  api: CoreApiServer;
  home: string;
  logger: Logger;
}

/**
 * The running core's door for the hangar command on this computer: a Unix socket
 * (`$HANGAR_HOME/core.sock`, 0600 in a 0700 dir, so only this user can connect) or a Windows
 * named pipe. Each connection greets, then is served by the core's CoreApiServer as door 'cli' —
 * the same table as the window, over the host links the core already holds.
 */
export class LocalDoor implements Disposable {
  private readonly sockets = new Set<Socket>();
  private readonly greeting: CoreGreeting;

  private constructor(
    readonly path: string,
    private readonly server: Server,
    private readonly options: LocalDoorOptions,
  ) {
    const protocol = protocolFingerprint();
    this.greeting = { hangar: 'core', door: DOOR_VERSION, pid: process.pid, ...(protocol ? { protocol } : {}) };
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Listens, or returns undefined (logged) when another core already answers there or the path cannot be used. */
  static async start(options: LocalDoorOptions): Promise<LocalDoor | undefined> {
    const { home, logger } = options;
    const path = coreSocketPath(home);
    const posix = process.platform !== 'win32';
    if (posix) {
      if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
        logger.warn(
          { path },
          'the state dir path is too long for a Unix socket; hangar commands will not reach this core',
        );
        return undefined;
      }
      mkdirSync(home, { recursive: true, mode: 0o700 });
      // The socket's permissions are only as good as its directory's: owner only.
      if ((statSync(home).mode & 0o077) !== 0) chmodSync(home, 0o700);
      const there = await reachRunningCore(home, { timeoutMs: 1000 });
      if (there.kind === 'core') {
        there.transport.close();
        logger.warn({ path }, 'another Hangar core already serves hangar commands from this state dir');
        return undefined;
      }
      // Nothing answers (a core that crashed left it), or something that is not a core: ours now.
      unlinkIfPresent(path);
    }
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // The socket file is made 0600 from the start (bind happens inside listen(), synchronously),
      // not chmod-ed after a moment with the process's usual umask.
      const umask = posix ? process.umask(0o177) : undefined;
      try {
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      } finally {
        if (umask !== undefined) process.umask(umask);
      }
    });
    if (posix) chmodSync(path, 0o600);
    logger.info({ path }, 'serving hangar commands on a local socket');
    return new LocalDoor(path, server, options);
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', (error) => this.options.logger.debug({ err: error }, 'a local door connection failed'));
    sendGreeting(socket, this.greeting);
    readGreeting(socket, isClientGreeting, CLIENT_GREETING_MS).then(
      ({ leftover }) => {
        if (socket.destroyed) return;
        this.options.api.serve(new SocketFrameTransport(socket, leftover), 'cli');
      },
      (error: Error) => {
        this.options.logger.debug(
          { reason: error.message },
          'refused a local connection that did not greet like hangar',
        );
        socket.destroy();
      },
    );
  }

  async dispose(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
    // server.close() removes a Unix socket file it made; a leftover would only look stale to the next start.
    if (process.platform !== 'win32') unlinkIfPresent(this.path);
  }
}

function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new HangarError(
        'E_UNAVAILABLE',
        `cannot replace the stale core socket at ${path}: ${(error as Error).message}`,
      );
    }
  }
}
