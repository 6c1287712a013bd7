import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { startRelayProcess, type RelayProcess } from '../../relay/test/support/relay-process.js';
import { dirFor, useCleanups, type Cleanups } from './cleanups.js';
import {
  AGENT_BIN,
  HANGAR_BIN,
  endAgent,
  hangar,
  startAgentProcess,
  tempDir,
  type AgentOptions,
  type AgentProcess,
  type CliResult,
} from './processes.js';

/**
 * The account side of the relay, end to end as a user runs it: a real `hangar-relay serve` process
 * (SQLite in a temp dir, cheap scrypt), `hangar signup|login` through the CLI, and the line
 * `hangar hosts enroll-token` prints, run by a shell on the "host" exactly as pasted.
 */

export const PASSWORD = 'correct horse battery staple';

/** `hangar-relay serve` arguments for a test: SQLite in `dataDir`, cheap scrypt, rate limits 100 times looser. */
export function testRelayArgs(listen: string, dataDir: string): string[] {
  return ['--listen', listen, '--data', dataDir, '--password-hash-cost', '10', '--rate-limit-scale', '100'];
}

/** `hangar-relay serve` on `ip` (loopback by default); `port` to restart one on the port it had. */
export function startTestRelayProcess(
  dataDir: string,
  port = 0,
  extra: string[] = [],
  ip = '127.0.0.1',
): Promise<RelayProcess> {
  return startRelayProcess([...testRelayArgs(`${ip}:${port}`, dataDir), ...extra]);
}

/** Runs `hangar …` with stdin (a password for --password-stdin). */
export async function hangarWithInput(home: string, args: string[], input: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HANGAR_BIN, ...args], {
      env: { ...process.env, HANGAR_HOME: home },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

export async function signupCli(home: string, relayUrl: string, email: string, deviceName = 'laptop') {
  return hangarWithInput(
    home,
    ['signup', '--relay', relayUrl, '--email', email, '--password-stdin', '--device-name', deviceName],
    `${PASSWORD}\n`,
  );
}

export async function loginCli(home: string, relayUrl: string, email: string, deviceName = 'phone') {
  return hangarWithInput(
    home,
    ['login', '--relay', relayUrl, '--email', email, '--password-stdin', '--device-name', deviceName],
    `${PASSWORD}\n`,
  );
}

/**
 * A host's shell: `$HOME` is `home` (so `~/.hangar-agent` is its agent's data dir) and
 * `hangar-agent` on its PATH is this checkout's. Runs a pasted line as `sh -c` does.
 */
export class HostShell {
  readonly home: string;
  private readonly bin: string;

  constructor() {
    this.home = tempDir('host-home');
    this.bin = join(this.home, '.bin');
    mkdirSync(this.bin);
    const shim = join(this.bin, 'hangar-agent');
    writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" "${AGENT_BIN}" "$@"\n`);
    chmodSync(shim, 0o755);
  }

  /** Where `--data ~/.hangar-agent` lands. */
  get agentData(): string {
    return join(this.home, '.hangar-agent');
  }

  async run(line: string): Promise<CliResult> {
    return new Promise((resolve) => {
      execFile(
        '/bin/sh',
        ['-c', line],
        { env: { ...process.env, HOME: this.home, PATH: `${this.bin}:${process.env['PATH']}` }, timeout: 30_000 },
        (error, stdout, stderr) =>
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
      );
    });
  }
}

export interface ListedHost {
  name: string;
  status: string;
  link: string;
  via: string;
  address: string;
  last_seen: number | null;
  account: { host_id: string; presence: string } | null;
  error: string | null;
}

export async function hostsLs(home: string): Promise<ListedHost[]> {
  const listed = await hangar(home, ['hosts', 'ls', '--json']);
  if (listed.code !== 0) throw new Error(`hangar hosts ls failed (${listed.code}): ${listed.stderr}`);
  return JSON.parse(listed.stdout) as ListedHost[];
}

/** Polls `hangar hosts ls --json` until `check` holds for the host named `name` (or the deadline). */
export async function waitForHost(
  home: string,
  name: string,
  check: (host: ListedHost) => boolean,
  timeoutMs = 20_000,
): Promise<ListedHost> {
  const deadline = Date.now() + timeoutMs;
  let last: ListedHost[] = [];
  for (;;) {
    last = await hostsLs(home);
    const host = last.find((h) => h.name === name);
    if (host && check(host)) return host;
    if (Date.now() > deadline) {
      throw new Error(`host ${name} never got there in ${timeoutMs} ms; last listing: ${JSON.stringify(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A host: a shell whose ~/.hangar-agent is the data dir of a running `hangar-agent serve`. */
export interface HostMachine {
  shell: HostShell;
  agent: AgentProcess;
  /** Starts the agent again on the port it had (after stop()): a device finds it where it was. */
  restart(): Promise<AgentProcess>;
}

/** A host machine whose agent logs at info (tests read its lines); gone with `cleanups`. */
export async function startHostMachine(cleanups: Cleanups, options: AgentOptions = {}): Promise<HostMachine> {
  const shell = new HostShell();
  const agentOptions = { logLevel: 'info', ...options };
  const host: HostMachine = {
    shell,
    agent: await startAgentProcess(shell.agentData, agentOptions),
    async restart() {
      host.agent = await startAgentProcess(shell.agentData, { ...agentOptions, port: host.agent.port });
      return host.agent;
    },
  };
  cleanups.push(() => endAgent(host.agent, shell.home));
  return host;
}

/** `hangar-relay serve` (see startTestRelayProcess), stopped with `cleanups`. */
export async function relayFor(cleanups: Cleanups, data: string, port = 0, extra: string[] = [], ip = '127.0.0.1') {
  const relay = await startTestRelayProcess(data, port, extra, ip);
  cleanups.push(() => relay.stop());
  return relay;
}

/** The line `hangar hosts enroll-token --name <name>` prints, for a host's shell to run. */
export async function enrollLine(home: string, name: string): Promise<string> {
  const made = await hangar(home, ['hosts', 'enroll-token', '--name', name]);
  expect(made.code, made.stderr).toBe(0);
  return made.stdout.trimEnd();
}

/** Runs the enroll line `home` makes for `name` on the host's shell; it must succeed. */
export async function enroll(home: string, host: HostMachine, name: string): Promise<void> {
  const enrolled = await host.shell.run(await enrollLine(home, name));
  expect(enrolled.code, enrolled.stderr).toBe(0);
}

/**
 * For a describe of relay e2e tests: everything made through it (temp dirs, relays, host machines,
 * and what a test pushes on `cleanups`) is undone after each test, last first.
 */
export function useRelayStack() {
  const cleanups = useCleanups();
  return {
    cleanups,
    dir: (prefix: string) => dirFor(cleanups, prefix),
    relayAt: (data: string, port = 0, extra: string[] = []): Promise<RelayProcess> =>
      relayFor(cleanups, data, port, extra),
    hostMachine: (options: AgentOptions = {}) => startHostMachine(cleanups, options),
  };
}
