import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { AttachedCli } from './pty-client.js';
import {
  BASH,
  hangar,
  killTmuxServer,
  pairWith,
  removeDir,
  startAgentProcess,
  tempDir,
  type AgentOptions,
  type AgentProcess,
} from './processes.js';
import { TcpProxy } from './tcp-proxy.js';

/** What a test gets: a real agent process, a $HANGAR_HOME paired with it as "box", its clients. */
export interface PairedHost {
  home: string;
  dataDir: string;
  /** A folder holding `workspace` files, with that option (a project a job is run from). */
  workspace: string;
  agent: AgentProcess;
  /** Present with `viaProxy`: the client reaches the agent through it (to cut or record the link). */
  proxy: TcpProxy | undefined;
  /** `hangar attach box <session>` in a pty (`env` added to its environment); closed after the test. */
  attach(session: string, size?: { cols: number; rows: number }, env?: Record<string, string>): AttachedCli;
  /** A new bash session of that name, attached (`hangar attach`) and showing its prompt. */
  bashAttached(session: string): Promise<AttachedCli>;
  /** Closes the `attach` commands started so far (a shared host's tests call it after each). */
  closeClients(): Promise<void>;
  /** Kills every session on the host (a shared host's tests that count sessions call it after each). */
  killSessions(): Promise<void>;
  /**
   * Stops the agent and starts it again on the same port and data dir, with the options it was
   * started with (`agent`, and what `beforeStart` added: extra arguments, log level, environment);
   * `replayWindowSeconds` given here replaces the first one.
   */
  restartAgent(options?: { signal?: NodeJS.Signals; replayWindowSeconds?: number }): Promise<void>;
}

export interface PairedHostOptions {
  /** The client reaches the agent through a TcpProxy (`host.proxy`). */
  viaProxy?: boolean;
  /** The name the client knows the host by ("box" unless given). */
  name?: string;
  /** The agent runs and the home is made, but the test pairs them (or not) itself. */
  unpaired?: boolean;
  /** Files (name → content) of a fresh folder, `host.workspace`. */
  workspace?: Record<string, string>;
  /** How the agent runs (its log level, …). */
  agent?: AgentOptions;
  /** Runs after the data dir is made and before the agent starts on it; may add to `agent`. */
  beforeStart?: (dataDir: string) => AgentOptions | void;
  /** One host for all the tests of the describe (beforeAll/afterAll), not a fresh one each. */
  shared?: boolean;
  /** How the agent is stopped after each test (SIGINT: at once, without the jobs' drain). */
  stopSignal?: NodeJS.Signals;
}

/**
 * Registers beforeEach/afterEach in the calling describe: every test gets a fresh paired host,
 * and everything it started (clients, the agent, its tmux server, temp dirs) is gone after it.
 */
export function usePairedHost(options: PairedHostOptions = {}): PairedHost {
  const clients: AttachedCli[] = [];
  let started: AgentOptions = {};
  const host = {
    proxy: undefined,
    attach(session: string, size = { cols: 100, rows: 30 }, env: Record<string, string> = {}) {
      const client = new AttachedCli(host.home, ['box', session], size, env);
      clients.push(client);
      return client;
    },
    async bashAttached(session: string) {
      const created = await hangar(host.home, ['session', 'new', 'box', '--name', session, ...BASH]);
      if (created.code !== 0) throw new Error(`hangar session new ${session} failed: ${created.stderr}`);
      const client = host.attach(session);
      await client.waitForText('$');
      return client;
    },
    async closeClients() {
      for (const client of clients.splice(0)) await client[Symbol.asyncDispose]();
    },
    async killSessions() {
      const listed = await hangar(host.home, ['session', 'ls', 'box', '--json']);
      if (listed.code !== 0) throw new Error(`hangar session ls failed: ${listed.stderr}`);
      const [group] = JSON.parse(listed.stdout) as { sessions: { name: string }[] }[];
      for (const { name } of group?.sessions ?? []) {
        const killed = await hangar(host.home, ['session', 'kill', 'box', name]);
        if (killed.code !== 0) throw new Error(`hangar session kill ${name} failed: ${killed.stderr}`);
      }
    },
    async restartAgent(restart: { signal?: NodeJS.Signals; replayWindowSeconds?: number } = {}) {
      await host.agent.stop(restart.signal);
      host.agent = await startAgentProcess(host.dataDir, {
        ...started,
        port: host.agent.port,
        ...(restart.replayWindowSeconds !== undefined ? { replayWindowSeconds: restart.replayWindowSeconds } : {}),
      });
    },
  } as PairedHost;

  const [before, after] = options.shared ? [beforeAll, afterAll] : [beforeEach, afterEach];
  before(async () => {
    host.home = tempDir('home');
    host.dataDir = tempDir('agent');
    if (options.workspace) {
      host.workspace = tempDir('ws');
      for (const [name, content] of Object.entries(options.workspace))
        writeFileSync(join(host.workspace, name), content);
    }
    const more = options.beforeStart?.(host.dataDir);
    started = { ...options.agent, ...more };
    host.agent = await startAgentProcess(host.dataDir, started);
    host.proxy = options.viaProxy ? await TcpProxy.start(host.agent.port) : undefined;
    if (!options.unpaired) await pairWith(host.home, options.name ?? 'box', host.agent, host.proxy?.address);
  });

  after(async () => {
    await host.closeClients();
    await host.proxy?.[Symbol.asyncDispose]();
    await host.agent?.stop(options.stopSignal);
    await killTmuxServer(host.dataDir);
    removeDir(host.home);
    removeDir(host.dataDir);
    if (host.workspace) removeDir(host.workspace);
  });

  return host;
}
