import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { AGENT_ENV, AGENT_NODE_FLAGS, tmuxSocketNameOf } from '@hangar/shared';

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '..', '..');
export const HANGAR_BIN = join(ROOT, 'electron', 'bin', 'hangar.js');
export const AGENT_BIN = join(ROOT, 'host-agent', 'bin', 'hangar-agent.js');

/** `hangar session new` arguments for a plain bash with a `$ ` prompt (root's default prompt is `#`). */
export const BASH = ['--env', 'PS1=$ ', '--', 'bash', '--norc', '--noprofile'];

export function tempDir(prefix: string): string {
  return realpathSync(mkdtempSync(join(tmpdir(), `hangar-${prefix}-`)));
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `hangar …` as a user would, with its own $HANGAR_HOME. */
export async function hangar(home: string, args: string[], timeoutMs = 20_000): Promise<CliResult> {
  return runNode(HANGAR_BIN, args, { env: { HANGAR_HOME: home }, timeoutMs });
}

/** How `hangarFrom` runs the CLI: from which folder, with what more in the environment. */
export interface RunFrom {
  cwd: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** `hangar …` run from a folder (a user in their project), with more in the environment. */
export async function hangarFrom(home: string, args: string[], options: RunFrom): Promise<CliResult> {
  const { cwd, env, timeoutMs = 30_000 } = options;
  return runNode(HANGAR_BIN, args, { cwd, env: { ...env, HANGAR_HOME: home }, timeoutMs });
}

export async function hangarAgent(args: string[], timeoutMs = 20_000): Promise<CliResult> {
  return runNode(AGENT_BIN, args, { timeoutMs });
}

async function runNode(
  bin: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs: number },
): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], {
      env: { ...process.env, ...options.env },
      timeout: options.timeoutMs,
      // A job's whole log can come back on stdout.
      maxBuffer: 512 * 1024 * 1024,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number | string; signal?: string; stdout?: string; stderr?: string };
    return {
      code: typeof failure.code === 'number' ? failure.code : -1,
      stdout: failure.stdout ?? '',
      // Killed by a signal (or timed out): say so after what it printed.
      stderr: (failure.stderr ?? String(error)) + (failure.signal ? `\n[killed by ${failure.signal}]` : ''),
    };
  }
}

/** The dedicated tmux socket name the agent uses for a data dir (see host-agent sessions). */
export function tmuxSocket(dataDir: string): string {
  return tmuxSocketNameOf(realpathSync(dataDir));
}

export async function tmux(dataDir: string, args: string[]): Promise<string> {
  const { stdout } = await run('tmux', ['-L', tmuxSocket(dataDir), ...args], { env: withoutTmux() });
  return stdout;
}

/**
 * Kills the agent's tmux server and waits (up to 5 s) until it and the processes of its panes are
 * gone: kill-server returns at once, and a pane's last writes (its exit wrapper, pipe-pane's cat)
 * would otherwise land in a data dir the test is removing.
 */
export async function killTmuxServer(dataDir: string): Promise<void> {
  const socket = tmuxSocket(dataDir);
  const listed = await run('tmux', ['-L', socket, 'list-panes', '-a', '-F', '#{pid} #{pane_pid}'], {
    env: withoutTmux(),
  }).catch(() => ({ stdout: '' })); // no server: nothing to wait for
  const pids = [...new Set(listed.stdout.split(/\s+/).filter(Boolean).map(Number))];
  await run('tmux', ['-L', socket, 'kill-server'], { env: withoutTmux() }).catch(() => undefined);
  const deadline = Date.now() + 5000;
  while (pids.some(isAlive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false; // ESRCH: gone (EPERM cannot happen for our own children)
  }
}

function withoutTmux(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['TMUX'];
  delete env['TMUX_PANE'];
  return env;
}

export interface AgentProcess {
  dataDir: string;
  address: string;
  port: number;
  child: ChildProcess;
  /** Everything it logged so far (JSON lines). */
  stderr(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** How `startAgentProcess` runs the agent. */
export interface AgentOptions {
  port?: number;
  maxSessions?: number;
  replayWindowSeconds?: number;
  logLevel?: string;
  extraArgs?: string[];
  /** Run the agent as this user (the test runs as root); its data dir must be that user's. */
  user?: { uid: number; gid: number };
  /** Argv that execs the agent (prlimit, unshare): the agent keeps the wrapper's pid. */
  wrapper?: string[];
  /** More environment for the agent (a stand-in's state file, PATH with a stand-in first). */
  env?: Record<string, string>;
}

/** Starts `hangar-agent serve` and waits for the line saying where it listens. */
export async function startAgentProcess(dataDir: string, options: AgentOptions = {}): Promise<AgentProcess> {
  const [command, ...prefix] = [...(options.wrapper ?? []), process.execPath];
  const child = spawn(
    command!,
    [
      ...prefix,
      ...AGENT_NODE_FLAGS,
      AGENT_BIN,
      'serve',
      '--listen',
      `127.0.0.1:${options.port ?? 0}`,
      '--data',
      dataDir,
      '--max-sessions',
      String(options.maxSessions ?? 5),
      '--replay-window',
      String(options.replayWindowSeconds ?? 60),
      ...(options.extraArgs ?? []),
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        ...AGENT_ENV,
        HANGAR_LOG_LEVEL: options.logLevel ?? process.env['HANGAR_LOG_LEVEL'] ?? 'warn',
        ...options.env,
      },
      ...(options.user ?? {}),
    },
  );
  const { at: address, stderr } = await untilListening(child, 'agent', 'address', 15_000);
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    await exited;
  };
  return { dataDir, address, port: Number(address.split(':').pop()), child, stderr, stop };
}

/**
 * Resolves when a server process prints the JSON line saying where it listens
 * (`{"event":"listening","<field>":…}`), with its stderr so far and on (shown live with
 * $HANGAR_TEST_VERBOSE). One that has not said so within `timeoutMs`, or prints something else on
 * stdout, is killed here: nobody else holds it to stop it.
 */
export async function untilListening(
  child: ChildProcess,
  what: string,
  field: 'address' | 'url',
  timeoutMs: number,
): Promise<{ at: string; stderr: () => string }> {
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (process.env['HANGAR_TEST_VERBOSE']) process.stderr.write(chunk);
  });
  let listening = false;
  const at = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} did not start within ${timeoutMs / 1000} s: ${stderr}`));
    }, timeoutMs);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (listening) return; // what it prints later is its own business
      try {
        const event = JSON.parse(line) as { event?: string } & Partial<Record<typeof field, string>>;
        const value = event[field];
        if (event.event === 'listening' && value) {
          listening = true;
          clearTimeout(timer);
          resolve(value);
        }
      } catch (error) {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new Error(`unexpected ${what} output ${line}: ${String(error)}`));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${stderr}`));
    });
  });
  return { at, stderr: () => stderr };
}

/** A paired pair: an agent process on loopback and a $HANGAR_HOME that knows it as `name`. */
export async function pairWith(
  home: string,
  name: string,
  agent: AgentProcess,
  address = agent.address,
): Promise<void> {
  const issued = await hangarAgent(['pair', '--data', agent.dataDir, '--json']);
  if (issued.code !== 0) throw new Error(`pair failed: ${issued.stderr}`);
  const { code } = JSON.parse(issued.stdout) as { code: string };
  const added = await hangar(home, ['hosts', 'add', name, address, '--code', code]);
  if (added.code !== 0) throw new Error(`hosts add failed: ${added.stderr}`);
}

/** A test's end for an agent: stopped, its tmux server killed, then `dirs` (its data dir among them) removed. */
export async function endAgent(agent: AgentProcess | undefined, ...dirs: string[]): Promise<void> {
  await agent?.stop();
  // An agent kept from an earlier test may have had its data dir removed already.
  if (agent && existsSync(agent.dataDir)) await killTmuxServer(agent.dataDir);
  for (const dir of dirs) removeDir(dir);
}

export function removeDir(dir: string): void {
  // Processes of a tmux server just killed (a pane's exit wrapper, pipe-pane's cat) may still write
  // a last file into the dir while it is removed (ENOTEMPTY): try again shortly, a few times.
  rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
}

/** A port free on 127.0.0.1 now (the OS picks it; whoever listens on it next should fail loudly if it is taken). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A TCP server in a process of its own, as a dev server is; resolves with it and its port. */
export async function listenInChild(address = '127.0.0.1'): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [
    '-e',
    `require('net').createServer().listen(0, ${JSON.stringify(address)}, function () { console.log(this.address().port) })`,
  ]);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('listener did not start in 10 s')), 10_000);
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve(Number(line));
    });
  });
  return { child, port };
}
