import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { AGENT_ENV, AGENT_NODE_FLAGS, HangarError, toHangarError, type Disposable } from '@hangar/shared';
import type { HangarCore } from '../core.js';
import { Supervisor, type Heartbeat } from './supervisor.js';

const run = promisify(execFile);

/** The embedded agent's host name in the registry. */
export const EMBEDDED_HOST = 'local';

/**
 * A ping every 5 s (VS Code's pty host beats as often); two unanswered in a row (5 s each) and
 * the agent is taken for hung, about 20 s after it stopped answering. A healthy agent answers
 * in milliseconds, so a busy machine is far from these bounds.
 */
export const AGENT_HEARTBEAT = { intervalMs: 5000, timeoutMs: 5000, misses: 2 } as const;

/**
 * On dispose the agent gets SIGTERM, on which it lets running jobs finish for up to its drain
 * grace (hangar-agent serve --drain-grace, 30 s) before it requeues them and exits: it is given
 * that long and a little more before SIGKILL. An agent with no running job exits at once.
 */
const AGENT_STOP_GRACE_MS = 35_000;

export interface EmbeddedAgentOptions {
  core: HangarCore;
  /** Where it listens, loopback only: 127.0.0.1:0 takes any free port. */
  listen: string;
  /** What the user should do when it cannot be kept running (ends the final error). */
  remedy: string;
  /** The Node that runs it. In Electron, Electron itself, with ELECTRON_RUN_AS_NODE=1 in env. */
  nodePath?: string;
  env?: NodeJS.ProcessEnv;
}

/** The path of `hangar-agent`'s entry: $HANGAR_AGENT_BIN, else the installed @hangar/host-agent. */
export function agentBinPath(): string {
  const fromEnv = process.env['HANGAR_AGENT_BIN'];
  if (fromEnv) return fromEnv;
  const pkg = fileURLToPath(import.meta.resolve('@hangar/host-agent/package.json'));
  return join(pkg, '..', 'bin', 'hangar-agent.js');
}

/**
 * This machine's own agent, run and kept running by the app: `hangar up` and the Electron window
 * both use this. It is paired as host "local" on its first start (and again if its data dir was
 * reset); every start points "local" at the port it got. A Supervisor restarts it when it exits
 * or stops answering the heartbeat pings on its stdin, within the restart policy's bounds.
 */
export class EmbeddedAgent implements Disposable {
  readonly dataDir: string;
  private readonly supervisor: Supervisor<string>;
  /** The agent now running (set when it is ready), whose stdin the heartbeat writes to. */
  private child: ChildProcess | undefined;
  private pings = 0;
  /** Heartbeat pings sent and not yet answered, by number. */
  private readonly pongs = new Map<number, () => void>();
  readonly onStarted: Supervisor<string>['onStarted'];
  readonly onRestarting: Supervisor<string>['onRestarting'];
  readonly onFailed: Supervisor<string>['onFailed'];

  constructor(private readonly options: EmbeddedAgentOptions) {
    this.dataDir = join(options.core.home, 'agent');
    const heartbeat: Heartbeat<string> = {
      ...AGENT_HEARTBEAT,
      probe: () => this.answers(),
    };
    this.supervisor = new Supervisor<string>({
      what: 'the embedded agent',
      remedy: options.remedy,
      spawn: () => this.spawnAgent(),
      ready: (child) => this.ready(child),
      heartbeat,
      stopGraceMs: AGENT_STOP_GRACE_MS,
    });
    this.onStarted = this.supervisor.onStarted;
    this.onRestarting = this.supervisor.onRestarting;
    this.onFailed = this.supervisor.onFailed;
  }

  /** Starts it and resolves with its address once it is paired; rejects if it cannot start. */
  start(): Promise<string> {
    return this.supervisor.start();
  }

  get pid(): number | undefined {
    return this.supervisor.pid;
  }

  dispose(): Promise<void> {
    return this.supervisor.dispose();
  }

  private spawnAgent(): ChildProcess {
    const { listen } = this.options;
    const child = spawn(
      this.options.nodePath ?? process.execPath,
      [...AGENT_NODE_FLAGS, agentBinPath(), 'serve', '--listen', listen, '--data', this.dataDir, '--stop-with-stdin'],
      {
        // Its stdin is a pipe only this process writes to: this process gone (even by kill -9),
        // the agent sees its end and stops, rather than serve the data dir beside the next one.
        stdio: ['pipe', 'pipe', 'inherit'],
        // The embedded agent logs only what needs attention into this terminal, unless asked for more.
        env: {
          ...(this.options.env ?? process.env),
          ...AGENT_ENV,
          HANGAR_LOG_LEVEL: process.env['HANGAR_LOG_LEVEL'] ?? 'warn',
        },
      },
    );
    // A ping written as it exits fails with EPIPE: that write's callback counts it as a miss, and
    // its exit is what the supervisor acts on; unhandled, the error would end this process.
    child.stdin?.on('error', (error) => this.options.core.logger.debug({ err: error }, 'embedded agent stdin'));
    return child;
  }

  /** Its `listening` line, then pairing: ready means "local" answers at this address. */
  private async ready(child: ChildProcess): Promise<string> {
    const address = await new Promise<string>((resolve) => {
      // Read to the end: a pipe nobody drains would block the agent once it filled.
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const event = parseJsonLine(line);
        if (event?.['event'] === 'listening' && typeof event['address'] === 'string') resolve(event['address']);
        if (event?.['event'] === 'pong' && child === this.child) this.answered(event['n']);
      });
    });
    this.child = child;
    await this.ensurePaired(address);
    return address;
  }

  private answered(n: unknown): void {
    const resolve = typeof n === 'number' ? this.pongs.get(n) : undefined;
    if (!resolve) return;
    this.pongs.delete(n as number);
    resolve();
  }

  /** Pairs on first start, and again if its data dir was reset. */
  private async ensurePaired(address: string): Promise<void> {
    const { core } = this.options;
    const existing = core.registry.find(EMBEDDED_HOST);
    if (existing && !existing.embedded) {
      throw new HangarError(
        'E_HOST_EXISTS',
        `a host named "${EMBEDDED_HOST}" exists and is not this machine's embedded agent; rename it with: hangar hosts rm ${EMBEDDED_HOST}`,
      );
    }
    if (existing) {
      core.updateHostAddress(EMBEDDED_HOST, address);
      try {
        await core.hostInfo(EMBEDDED_HOST);
        return;
      } catch (error) {
        const code = toHangarError(error).code;
        if (code !== 'E_AUTH_HOST_KEY_CHANGED' && code !== 'E_AUTH_UNKNOWN_DEVICE') throw error;
      }
    }
    const { stdout } = await run(
      this.options.nodePath ?? process.execPath,
      [agentBinPath(), 'pair', '--data', this.dataDir, '--json'],
      { env: this.options.env ?? process.env },
    );
    const code = parseJsonLine(stdout)?.['code'];
    if (typeof code !== 'string') throw new HangarError('E_INTERNAL', `hangar-agent pair printed no code: ${stdout}`);
    await core.addHost({ name: EMBEDDED_HOST, address, code, embedded: true, replace: true });
  }

  /**
   * The heartbeat: a `ping <n>` line on the agent's stdin, answered with a pong line on its stdout
   * from its event loop (a wedged or stopped agent cannot). The pipes are the ones it was started
   * with, which only this process holds: nothing else can answer, and a beat costs one line each
   * way instead of a TCP connection and a TLS handshake with its link port.
   */
  private answers(): Promise<void> {
    const child = this.child;
    if (!child?.stdin?.writable) return Promise.reject(new Error('its stdin is closed'));
    const n = ++this.pings;
    // The supervisor probes again only after the last probe settled (answered, or missed at its own
    // deadline): a ping still unanswered now was counted as a miss, and its late answer means nothing.
    this.pongs.clear();
    return new Promise((resolve, reject) => {
      this.pongs.set(n, resolve);
      child.stdin!.write(`ping ${n}\n`, (error) => {
        if (error && this.pongs.delete(n)) reject(error);
      });
    });
  }
}

function parseJsonLine(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined; // not one of the agent's JSON lines
  }
}
