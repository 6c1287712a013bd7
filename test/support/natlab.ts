import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as pty from 'node-pty';
import { expect } from 'vitest';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '@hangar/shared';
import { RELAY_BIN } from '../../relay/test/support/relay-process.js';
import type { Cleanups } from './cleanups.js';
import { NATLAB, PUB_IP, buildLab, removeLab } from './natlab-lab.mjs';
import { AGENT_BIN, HANGAR_BIN, killTmuxServer, removeDir, tempDir } from './processes.js';
import { coturnConfig } from './coturn.js';
import { PASSWORD, testRelayArgs } from './relay-stack.js';

/**
 * Two NATs in network namespaces (../shared/tools/natlab.py builds them: a public segment with the
 * relay and coturn, the host behind natA, the computer behind natB; neither reaches the other's
 * private address), with a relay, coturn, an account, and the host enrolled and online in it.
 * Everything runs in namespaces the lab makes and the test's cleanups remove; `canNatLab` is false
 * where `ip netns` or coturn is not available (not root).
 */

export { PUB_IP };

export const canNatLab = (() => {
  if (NATLAB === undefined) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    execFileSync('turnserver', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

export type Place = 'pub' | 'natA' | 'hostA' | 'natB' | 'hostB';
export type Namespaces = Record<string, string>;
export type Ran = { code: number; stdout: string; stderr: string };

/** `iptables …` in one of the lab's namespaces (a NAT's firewall); throws with iptables' words when it fails. */
export function iptablesIn(ns: Namespaces, place: Place, args: string[]): Promise<void> {
  try {
    execFileSync('ip', ['netns', 'exec', ns[place]!, 'iptables', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const said = (error as { stderr?: Buffer }).stderr?.toString() ?? String(error);
    throw new Error(`iptables ${args.join(' ')} in ${place}: ${said}`);
  }
  return Promise.resolve();
}

/** A long-running process in a namespace, stopped by the cleanups (SIGKILL after 5 s). */
export function spawnIn(
  cleanups: Cleanups,
  ns: Namespaces,
  place: Place,
  argv: string[],
  env: Record<string, string>,
): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', ns[place]!, ...argv], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    if (process.env['HANGAR_TEST_VERBOSE']) process.stderr.write(chunk);
  });
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((done) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          done(undefined);
        }, 5_000);
        child.once('exit', () => {
          clearTimeout(timer);
          done(undefined);
        });
      });
    }
  });
  return child;
}

/** Runs a command in a namespace to its end: code, stdout, stderr. */
export function runIn(
  ns: Namespaces,
  place: Place,
  argv: string[],
  env: Record<string, string>,
  input = '',
  timeoutMs = 60_000,
): Promise<Ran> {
  return new Promise((done) => {
    const child = spawn('ip', ['netns', 'exec', ns[place]!, ...argv], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** The first line of `child`'s stdout that matches (20 s at most). */
export function waitForLine(child: ChildProcess, match: (line: string) => boolean, what: string): Promise<string> {
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`${what} did not start within 20 s`)), 20_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!match(line)) return;
      clearTimeout(timer);
      done(line);
    });
    child.once('exit', (code) => fail(new Error(`${what} exited with ${code}`)));
  });
}

/**
 * `hangar run` of a shell job on the host "mini" with no workspace that echoes `word`, through
 * `hangar` (a lab's hangarIn, a timed or plain run): it exits 0, never by a signal, and prints the word.
 */
export async function runJob<R extends Ran>(hangar: (args: string[]) => Promise<R>, word: string): Promise<R> {
  const job = await hangar(['run', '--host', 'mini', '--executor', 'shell', '--no-workspace', '-c', `echo ${word}`]);
  expect(job.stderr).not.toMatch(/killed by/);
  expect(job.code, job.stderr).toBe(0);
  expect(job.stdout).toContain(word);
  return job;
}

export interface NatLab {
  ns: Namespaces;
  /** The computer's $HANGAR_HOME (in hostB). */
  laptop: string;
  /** The host's $HOME (in hostA): its agent's data is `.hangar-agent` in it. */
  hostHome: string;
  relayUrl: string;
  /** What the host's agent has logged so far (info and up: stdout and stderr). */
  agentLog: () => string;
  /** `hangar …` on the computer, behind natB. */
  hangarIn: (args: string[], input?: string) => Promise<Ran>;
  /** Runs a command in a namespace as root (iptables on a NAT, a server on the host). */
  exec: (place: Place, argv: string[], env?: Record<string, string>) => Promise<Ran>;
  spawn: (place: Place, argv: string[], env?: Record<string, string>) => ChildProcess;
}

/**
 * The lab, up to the point where the computer sees the host online in its account (no link made
 * yet): coturn and the relay on the public segment, an account on the computer, the host enrolled
 * with its line and serving on 0.0.0.0:7070. `beforeEnroll` runs on the bare lab first (firewall
 * rules that must hold from the host's first packet).
 */
export async function startNatLab(
  cleanups: Cleanups,
  mode: 'cone' | 'symmetric',
  beforeEnroll?: (ns: Namespaces) => Promise<void>,
): Promise<NatLab> {
  const ns = buildLab(mode);
  cleanups.push(() => removeLab(ns));
  await beforeEnroll?.(ns);
  const work = tempDir('natlab');
  cleanups.push(() => removeDir(work));
  const spawnHere = (place: Place, argv: string[], env: Record<string, string> = {}) =>
    spawnIn(cleanups, ns, place, argv, env);

  // The public segment: coturn (STUN and TURN, use-auth-secret) and the relay that knows it.
  const turn = coturnConfig(work, PUB_IP, 3478);
  const secretFile = turn.secretFile;
  const coturn = spawnHere('pub', ['turnserver', ...turn.args]);
  await waitForLine(coturn, (line) => /Total General servers|listener opened/i.test(line), 'coturn');
  if (process.env['HANGAR_TEST_VERBOSE'])
    coturn.stdout!.on('data', (chunk: Buffer) => process.stderr.write(`[coturn] ${chunk}`));
  const relay = spawnHere(
    'pub',
    [
      process.execPath,
      RELAY_BIN,
      'serve',
      ...testRelayArgs(`${PUB_IP}:8443`, join(work, 'relay')),
      '--turn',
      `turn:${PUB_IP}:3478`,
      '--turn-secret-file',
      secretFile,
    ],
    { HANGAR_LOG_LEVEL: 'warn' },
  );
  const relayUrl = (
    JSON.parse(await waitForLine(relay, (line) => line.includes('"listening"'), 'relay')) as { url: string }
  ).url;

  // The computer, behind natB.
  const laptop = join(work, 'laptop');
  const hangarIn = (args: string[], input = '') =>
    runIn(ns, 'hostB', [process.execPath, HANGAR_BIN, ...args], { HANGAR_HOME: laptop }, input);
  const signup = await hangarIn(
    ['signup', '--relay', relayUrl, '--email', 'me@example.com', '--password-stdin', '--device-name', 'laptop'],
    `${PASSWORD}\n`,
  );
  expect(signup.code, signup.stderr).toBe(0);
  const line = (await hangarIn(['hosts', 'enroll-token', '--name', 'mini'])).stdout.trimEnd();
  expect(line).toMatch(/hgr1_/);

  // The host, behind natA: enrolled with the line, then serving.
  const hostHome = join(work, 'host-home');
  const bin = join(hostHome, '.bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'hangar-agent'), `#!/bin/sh\nexec "${process.execPath}" "${AGENT_BIN}" "$@"\n`);
  chmodSync(join(bin, 'hangar-agent'), 0o755);
  const hostEnv = { HOME: hostHome, PATH: `${bin}:${process.env['PATH']}` };
  const enrolled = await runIn(ns, 'hostA', ['/bin/sh', '-c', line], hostEnv);
  expect(enrolled.code, enrolled.stderr).toBe(0);
  const agent = spawnHere(
    'hostA',
    [
      process.execPath,
      ...AGENT_NODE_FLAGS,
      AGENT_BIN,
      'serve',
      '--listen',
      '0.0.0.0:7070',
      '--data',
      join(hostHome, '.hangar-agent'),
    ],
    { ...hostEnv, ...AGENT_ENV, HANGAR_LOG_LEVEL: 'info' },
  );
  cleanups.push(() => killTmuxServer(join(hostHome, '.hangar-agent')));
  let agentLog = '';
  for (const stream of [agent.stdout!, agent.stderr!])
    stream.on('data', (chunk: Buffer) => (agentLog += chunk.toString()));
  await waitForLine(agent, (l) => l.includes('"listening"'), 'agent');

  // Online on the relay, as the computer sees it.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const listed = JSON.parse((await hangarIn(['hosts', 'ls', '--json'])).stdout || '[]') as {
      name: string;
      account: { presence: string } | null;
    }[];
    if (listed.find((h) => h.name === 'mini')?.account?.presence === 'online') break;
    if (Date.now() > deadline) throw new Error(`host never online: ${JSON.stringify(listed)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  return {
    ns,
    laptop,
    hostHome,
    relayUrl,
    agentLog: () => agentLog,
    hangarIn,
    exec: (place, argv, env = {}) => runIn(ns, place, argv, env),
    spawn: spawnHere,
  };
}

/** tcpdump on the public segment's bridge (the relay and coturn both listen on it), to a buffer. */
export function captureIn(cleanups: Cleanups, ns: Namespaces, filter: string) {
  const child = spawn('ip', ['netns', 'exec', ns['pub']!, 'tcpdump', '-i', 'br0', '-U', '-s', '0', '-w', '-', filter], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
  const ready = new Promise<void>((done, fail) => {
    const timer = setTimeout(() => fail(new Error('tcpdump did not start in 10 s')), 10_000);
    child.stderr.on('data', (chunk: Buffer) => {
      if (!chunk.toString().includes('listening on')) return;
      clearTimeout(timer);
      done();
    });
  });
  return {
    ready,
    stop: async () => {
      child.kill('SIGINT');
      await exited;
      return Buffer.concat(chunks);
    },
  };
}

/**
 * `hangar attach` in the computer's namespace, on a pty. `screen()` is what it showed without
 * escape sequences (bash's bracketed-paste toggle, ESC[?2004l, can come between a newline and a
 * command's output); `raw()` as it came.
 */
export function attachIn(
  cleanups: Cleanups,
  ns: Namespaces,
  home: string,
  args: string[],
  env: Record<string, string> = {},
) {
  const term = pty.spawn('ip', ['netns', 'exec', ns['hostB']!, process.execPath, HANGAR_BIN, 'attach', ...args], {
    name: 'xterm-256color',
    cols: 100,
    rows: 30,
    env: { ...process.env, ...env, HANGAR_HOME: home } as Record<string, string>,
  });
  let output = '';
  let raw = '';
  const waiters: (() => void)[] = [];
  term.onData((data) => {
    raw += data;
    output += data.replace(/\r/g, '').replace(/\x1b(\[[0-9;?<=>]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>])/g, '');
    for (const check of waiters.splice(0)) check();
  });
  const exited = new Promise<number>((done) => term.onExit(({ exitCode }) => done(exitCode)));
  cleanups.push(() => {
    try {
      term.kill();
    } catch {
      // exited
    }
  });
  return {
    exited,
    raw: () => raw,
    type: (text: string) => term.write(text),
    waitFor: (needle: string, timeoutMs = 30_000) =>
      new Promise<void>((done, fail) => {
        const timer = setTimeout(
          () => fail(new Error(`no "${needle}" within ${timeoutMs} ms: ${output.slice(-500)}`)),
          timeoutMs,
        );
        const check = () => {
          if (output.includes(needle)) {
            clearTimeout(timer);
            done();
          } else waiters.push(check);
        };
        check();
      }),
  };
}
