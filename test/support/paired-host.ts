import { afterEach, beforeEach } from 'vitest';
import { AttachedCli } from './pty-client.js';
import { killTmuxServer, pairWith, removeDir, startAgentProcess, tempDir, type AgentProcess } from './processes.js';
import { TcpProxy } from './tcp-proxy.js';

/** What a test gets: a real agent process, a $HANGAR_HOME paired with it as "box", its clients. */
export interface PairedHost {
  home: string;
  dataDir: string;
  agent: AgentProcess;
  /** Present with `viaProxy`: the client reaches the agent through it (to cut or record the link). */
  proxy: TcpProxy | undefined;
  /** `hangar attach box <session>` in a pty; closed after the test. */
  attach(session: string, size?: { cols: number; rows: number }): AttachedCli;
  /** Stops the agent and starts it again on the same port and data dir. */
  restartAgent(options?: { signal?: NodeJS.Signals; replayWindowSeconds?: number }): Promise<void>;
}

/**
 * Registers beforeEach/afterEach in the calling describe: every test gets a fresh paired host,
 * and everything it started (clients, the agent, its tmux server, temp dirs) is gone after it.
 */
export function usePairedHost(options: { viaProxy?: boolean } = {}): PairedHost {
  const clients: AttachedCli[] = [];
  const host = {
    proxy: undefined,
    attach(session: string, size = { cols: 100, rows: 30 }) {
      const client = new AttachedCli(host.home, ['box', session], size);
      clients.push(client);
      return client;
    },
    async restartAgent(restart: { signal?: NodeJS.Signals; replayWindowSeconds?: number } = {}) {
      await host.agent.stop(restart.signal);
      host.agent = await startAgentProcess(host.dataDir, {
        port: host.agent.port,
        ...(restart.replayWindowSeconds !== undefined ? { replayWindowSeconds: restart.replayWindowSeconds } : {}),
      });
    },
  } as PairedHost;

  beforeEach(async () => {
    host.home = tempDir('home');
    host.dataDir = tempDir('agent');
    host.agent = await startAgentProcess(host.dataDir);
    host.proxy = options.viaProxy ? await TcpProxy.start(host.agent.port) : undefined;
    await pairWith(host.home, 'box', host.agent, host.proxy?.address);
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) await client[Symbol.asyncDispose]();
    await host.proxy?.[Symbol.asyncDispose]();
    await host.agent?.stop();
    await killTmuxServer(host.dataDir);
    removeDir(host.home);
    removeDir(host.dataDir);
  });

  return host;
}
