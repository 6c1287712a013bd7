import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { LinkServer } from '../../src/link/index.js';
import { AgentStore } from '../../src/store/db.js';
import type { Cleanups } from '../../../test/support/cleanups.js';

type ListenOptions = Parameters<typeof LinkServer.listen>[0];

/**
 * A LinkServer on 127.0.0.1 with a fresh data dir and store, silent logs and a small host;
 * `options` says the rest (onLink, limits). Gone, dir included, with `cleanups`.
 */
export async function startLinkServer(
  cleanups: Cleanups,
  options: Partial<ListenOptions> & Pick<ListenOptions, 'onLink'>,
): Promise<LinkServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'hangar-link-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const store = AgentStore.open(dataDir);
  cleanups.push(() => store.dispose());
  const server = await LinkServer.listen({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    store,
    hostInfo: () => ({
      hostname: 'h',
      os: 'linux',
      arch: 'x64',
      agent_version: '0',
      tmux_version: null,
      session_limit: 5,
    }),
    logger: pino({ level: 'silent' }),
    ...options,
  });
  cleanups.push(() => server.dispose());
  return server;
}
