// What the benchmark scripts share: where the binaries are, percentiles, memory readings,
// starting a real agent process the way `hangar up` does (same Node flags and environment), a
// real relay process, and a free port.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '@hangar/shared';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const HANGAR = join(ROOT, 'electron', 'bin', 'hangar.js');
export const AGENT = join(ROOT, 'host-agent', 'bin', 'hangar-agent.js');
export const RELAY = join(ROOT, 'relay', 'bin', 'hangar-relay.js');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Resident memory of a process, KiB (Linux). */
export function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

/**
 * CPU time (user + system) a process has used, ms; `self` is this process. On a machine shared
 * with other work, CPU per byte is the figure that load does not move (wall time does, a lot).
 */
export function cpuMs(pid) {
  if (pid === 'self') {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/**
 * CPU time (ms) all threads of a process have used so far, from Linux's schedstat (ns, where
 * /proc/<pid>/stat counts 10 ms ticks): fine enough for a keystroke's few hundred µs.
 */
export function threadsCpuMs(pid) {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return ns / 1e6;
}

/**
 * How many times a process's main thread has gone to sleep and been woken (voluntary context
 * switches): an event loop's wake-ups, which the machine's load does not change.
 */
export function wakeUps(pid) {
  return Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'))[1]);
}

/**
 * The relay processes of a terminal client: `roots` and their descendants, leaving out tmux (its
 * client and server are the same in every path measured). Read from /proc.
 */
export function relayProcesses(roots) {
  const children = new Map();
  const names = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      names.set(Number(entry), name);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const found = [];
  const visit = (pid) => {
    if (!names.has(pid) || names.get(pid).startsWith('tmux')) return;
    found.push(pid);
    for (const child of children.get(pid) ?? []) visit(child);
  };
  for (const root of roots) visit(root);
  return found;
}

/**
 * CPU time (ms, schedstat) and context switches (voluntary: a thread went to sleep and was woken;
 * involuntary: preempted) over all threads of `pids`, so far.
 */
export function processesCost(pids) {
  let ns = 0;
  let voluntary = 0;
  let involuntary = 0;
  for (const pid of pids) {
    let tids = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
        const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
        voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)[1]);
        involuntary += Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)[1]);
      } catch {
        // The thread ended meanwhile.
      }
    }
  }
  return { cpuMs: ns / 1e6, voluntary, involuntary };
}

/** The load average over the last minute: printed beside figures measured on a shared machine. */
export function loadAverage() {
  return readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
}

/**
 * `hangar-agent serve` on loopback; resolves with the process and the address it printed. `flags`:
 * the Node flags its checkout runs it with (another checkout's AGENT_NODE_FLAGS for a baseline).
 */
export async function startAgent({ data, env, port = 0, bin = AGENT, flags = AGENT_NODE_FLAGS }) {
  execFileSync('mkdir', ['-p', data]);
  const child = spawn(
    process.execPath,
    [
      ...flags,
      ...(process.env.BENCH_AGENT_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
      bin,
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      '--data',
      data,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...env, ...AGENT_ENV, HANGAR_LOG_LEVEL: 'warn' } },
  );
  // An agent that dies, or does not listen within 30 s, fails the run instead of hanging it.
  const address = await new Promise((resolveAddress, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('hangar-agent serve did not listen within 30 s'));
    }, 30_000);
    const died = (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`hangar-agent serve exited (${signal ?? `code ${code}`}) before it listened`));
    };
    child.once('exit', died);
    child.once('error', reject);
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (process.env.BENCH_AGENT_STDOUT) process.stderr.write(line + '\n');
      if (!line.startsWith('{')) return;
      const event = JSON.parse(line);
      if (event.event === 'listening') {
        clearTimeout(timer);
        child.off('exit', died);
        resolveAddress(event.address);
      }
    });
  });
  // Dying later ends the run too (a bench waiting on the agent would wait forever); the signals
  // a bench stops it with are not deaths.
  child.once('exit', (code, signal) => {
    if (code === 0 || ['SIGTERM', 'SIGINT', 'SIGHUP'].includes(signal)) return;
    process.stderr.write(`bench: hangar-agent serve died (${signal ?? `exit code ${code}`}) during the run\n`);
    process.exit(1);
  });
  return { child, address };
}

/**
 * A throwaway PostgreSQL cluster in `dir` (as the postgres user when this runs as root), on a
 * Unix socket only, durable settings (fsync on) as the relay would run; `options` go to the
 * server (-c name=value …). `url(db)` names a database there; `stop()` ends it.
 */
export function startPostgres(dir, options = '') {
  const bin = join('/usr/lib/postgresql', readdirSync('/usr/lib/postgresql').sort((a, b) => b - a)[0], 'bin');
  const pgDir = join(dir, 'pg');
  const sock = join(pgDir, 'sock');
  mkdirSync(sock, { recursive: true });
  const asUser = userInfo().uid === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
  if (asUser.length > 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    for (const path of [dir, pgDir, sock]) chownSync(path, uid, gid);
  }
  const run = (command, args) =>
    execFileSync(asUser[0] ?? command, [...asUser.slice(1), ...(asUser.length ? [command] : []), ...args], {
      stdio: 'ignore',
    });
  run(join(bin, 'initdb'), ['-D', join(pgDir, 'data'), '-U', 'hangar', '--auth=trust', '--no-sync']);
  const server = `-k ${sock} -p 5432 -c listen_addresses='' ${options}`.trim();
  run(join(bin, 'pg_ctl'), ['-D', join(pgDir, 'data'), '-o', server, '-l', join(pgDir, 'log'), '-w', 'start']);
  return {
    url: (db) => `postgres://hangar@localhost:5432/${db}?host=${encodeURIComponent(sock)}`,
    stop: () => run(join(bin, 'pg_ctl'), ['-D', join(pgDir, 'data'), '-m', 'fast', '-w', 'stop']),
  };
}

/** `hangar-relay serve <args>`, logging warnings to this terminal: the process and the URL it listens at. */
export async function startRelay(args) {
  const child = spawn(process.execPath, [RELAY, 'serve', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, HANGAR_LOG_LEVEL: 'warn' },
  });
  const url = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`hangar-relay exited with ${code}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const event = JSON.parse(line);
      if (event.event === 'listening') resolve(event.url);
    });
  });
  return { child, url };
}

/** Prints `title`, then the rows as two aligned columns (what was measured, and the figure). */
export function printRows(title, rows, indent = '') {
  const width = Math.max(...rows.map(([name]) => name.length));
  console.log(title);
  for (const [name, value] of rows) console.log(`${indent}${name.padEnd(width)}  ${value}`);
}

/** A port free on 127.0.0.1 now (the OS picks it). */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once something accepts connections on 127.0.0.1:`port` (5 s at most). */
export async function waitForPort(port, what) {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${what} did not listen on ${port}`);
}

/** Runs a bench's cleanups, last pushed first; one that fails is reported and the rest still run. */
export async function runCleanups(cleanups) {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (error) {
      process.stderr.write(`cleanup: ${error.message}\n`);
    }
  }
}

/**
 * Exits (status 2) saying what to install when a program a bench runs is not on PATH, rather than
 * failing later with spawn's ENOENT. `programs`: name → Debian package.
 */
export function requirePrograms(programs) {
  const missing = Object.entries(programs).filter(([name]) => {
    try {
      execFileSync('which', [name], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return;
  const names = missing.map(([name]) => name).join(', ');
  const packages = [...new Set(missing.map(([, pkg]) => pkg))].join(' ');
  console.error(
    `this bench needs ${names}: install with apt-get install ${packages} (or your system's package manager)`,
  );
  process.exit(2);
}

/**
 * A throwaway sshd on 127.0.0.1 with its own host and user keys in `dir`, used by the
 * terminal, previews (`ssh -L`) and jobs benches. Returns the ssh command line for a terminal
 * (`command`, without the remote command), `ssh(options, remote)` for any other, sshd's pid and a
 * stop function, or the reason it cannot run: it needs openssh-server (`apt-get install openssh-server`) and root (sshd
 * reads its host key as root and logs in as this user). An sshd that exits or does not listen
 * within 5 s is stopped (it would go on under init, as root, with the keys in `dir`) and the
 * promise rejects. `options.sshd`: another sshd binary (tests).
 */
export async function startSshd(dir, options = {}) {
  const sshdPath = options.sshd ?? '/usr/sbin/sshd';
  try {
    execFileSync('which', [sshdPath, 'ssh'], { stdio: 'ignore' });
  } catch {
    return { reason: 'not measured: install openssh-server (apt-get install openssh-server)' };
  }
  if (process.getuid?.() !== 0) return { reason: 'not measured: sshd needs root here (run the bench as root)' };
  const sshDir = join(dir, 'ssh');
  mkdirSync(sshDir, { mode: 0o700 });
  for (const name of ['host', 'user']) {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(sshDir, name)]);
  }
  execFileSync('cp', [join(sshDir, 'user.pub'), join(sshDir, 'authorized_keys')]);
  const port = await freePort();
  const config = join(sshDir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(sshDir, 'host')}`,
      `AuthorizedKeysFile ${join(sshDir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      `PidFile ${join(sshDir, 'sshd.pid')}`,
      // The remote command's environment: tmux must find the agent's server by its socket name.
      'PermitUserEnvironment no',
      'AllowTcpForwarding yes', // bench:previews' ssh -L
      '',
    ].join('\n'),
  );
  mkdirSync('/run/sshd', { recursive: true });
  const sshd = spawn(sshdPath, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let said = '';
  sshd.stderr.on('data', (chunk) => (said = (said + chunk).slice(-2000)));
  const exited = new Promise((resolve) => sshd.once('exit', (code, signal) => resolve(signal ?? code)));
  try {
    await Promise.race([
      waitForPort(port, 'sshd'),
      exited.then((status) => {
        throw new Error(`sshd exited (${status}) before it listened: ${said.trim()}`);
      }),
    ]);
  } catch (error) {
    if (sshd.exitCode === null && sshd.signalCode === null) {
      sshd.kill();
      await exited;
    }
    throw error;
  }
  sshd.stderr.resume();
  /** An ssh command line to this sshd: `options` before the destination, then `remote` after it. */
  const ssh = (options, remote = []) => [
    'ssh',
    ...options,
    '-p',
    String(port),
    '-i',
    join(sshDir, 'user'),
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    `UserKnownHostsFile=${join(sshDir, 'known_hosts')}`,
    '-o',
    'BatchMode=yes',
    `${userInfo().username}@127.0.0.1`,
    ...remote,
  ];
  return { command: ssh(['-tt']), ssh, pid: sshd.pid, stop: () => sshd.kill() };
}
