import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ExecutionRequest } from '../../../src/jobs/executors/types.js';
import { slirpArgv } from '../../../src/jobs/executors/sandbox-network.js';
import { killQuietly, until } from '../../../../test/support/until.js';
import { cleanups, harness, tempDir } from './sandbox-harness.js';

/**
 * The sandbox's network, through the executor as the jobs service drives it: the default
 * (`outbound`) reaches out through slirp4netns but not the host's loopback services nor its
 * abstract Unix sockets; `host` (the old default) reaches both, which is what shows each of these
 * tests can fail; `none` reaches nothing.
 */

const HAS_BWRAP = process.platform === 'linux' && existsSync('/usr/bin/bwrap');
const HAS_SLIRP = spawnSync('slirp4netns', ['--version']).status === 0;

/** What the job runs: tries each target (host:port, or @name for an abstract Unix socket), one line each. */
const PROBE = `
const net = require('node:net');
const targets = process.argv.slice(2);
(async () => {
  for (const target of targets) {
    const said = await new Promise((resolve) => {
      const socket = target.startsWith('@')
        ? net.connect('\\0' + target.slice(1))
        : net.connect(Number(target.split(':')[1]), target.split(':')[0]);
      socket.setTimeout(3000, () => { socket.destroy(); resolve('timeout'); });
      socket.on('data', (data) => { socket.destroy(); resolve('read ' + data.toString().trim()); });
      socket.on('error', (error) => resolve(error.code));
    });
    console.log(target + ' ' + said);
  }
})();
`;

async function listen(server: Server, ...args: unknown[]): Promise<void> {
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  (server.listen as (...a: unknown[]) => void)(...args);
  await once(server, 'listening');
}

/** A TCP or abstract-socket server that says `hello` to whoever connects. */
function helloServer(): Server {
  return createServer((socket) => socket.end('hello\n'));
}

/** The host's first non-loopback IPv4 address, or undefined. */
function hostAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry && entry.family === 'IPv4' && !entry.internal)?.address;
}

/** Pids of slirp4netns processes started for this job (its marks are in their environment). */
function slirpOf(jobId: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        // setpriv before it execs slirp4netns; the bwrap launcher's own setpriv is not one.
        const slirp = (arg: string) => arg.endsWith('/slirp4netns') || arg === 'slirp4netns';
        if (!slirp(argv[0]!) && !(argv[0] === 'setpriv' && argv.some(slirp))) return false;
        return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`HANGAR_JOB_ID=${jobId}`);
      } catch {
        return false; // gone meanwhile, or not ours to read
      }
    })
    .map(Number);
}

function jobId(): string {
  return `net-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

async function probe(targets: string[], extra: Partial<ExecutionRequest> = {}) {
  const h = harness();
  const { request, output } = h.request(`node /work/probe.js ${targets.join(' ')}`, { jobId: jobId(), ...extra });
  writeFileSync(join(request.workdir, 'probe.js'), PROBE, { mode: 0o644 });
  const execution = await h.executor.start(request);
  const result = await execution.done;
  const lines = Object.fromEntries(
    output()
      .trim()
      .split('\n')
      .map((line) => line.split(' '))
      .map(([target, ...said]) => [target!, said.join(' ')]),
  );
  return { result, lines, output: output(), request };
}

describe.skipIf(!HAS_BWRAP || !HAS_SLIRP)('the sandbox network (bubblewrap, slirp4netns)', () => {
  it('a job with the default network cannot reach the host’s loopback services nor its abstract sockets; with host it can', async () => {
    const tcp = helloServer();
    await listen(tcp, 0, '127.0.0.1');
    const port = (tcp.address() as AddressInfo).port;
    const name = `hangar-test-${jobId()}`;
    const abstract = helloServer();
    await listen(abstract, `\0${name}`);
    const targets = [`127.0.0.1:${port}`, `10.0.2.2:${port}`, `@${name}`];

    const outbound = await probe(targets);
    expect(outbound.result.exitCode, outbound.output).toBe(0);
    expect(outbound.lines[`127.0.0.1:${port}`]).toBe('ECONNREFUSED');
    expect(outbound.lines[`10.0.2.2:${port}`]).not.toMatch(/^read/);
    expect(outbound.lines[`@${name}`]).toBe('ECONNREFUSED');

    const host = await probe(targets, { network: 'host' });
    expect(host.lines[`127.0.0.1:${port}`]).toBe('read hello');
    expect(host.lines[`@${name}`]).toBe('read hello');
  });

  it.skipIf(hostAddress() === undefined)(
    'a job with the default network reaches a server on the host’s own address; with none it does not',
    async () => {
      const address = hostAddress()!;
      // Only on that address: the sandbox gets there through slirp4netns, as any machine of the network would.
      const tcp = helloServer();
      await listen(tcp, 0, address);
      const target = `${address}:${(tcp.address() as AddressInfo).port}`;

      const outbound = await probe([target], { network: 'outbound' });
      expect(outbound.lines[target], outbound.output).toBe('read hello');
      const byDefault = await probe([target]);
      expect(byDefault.lines[target], byDefault.output).toBe('read hello');
      const none = await probe([target], { network: 'none' });
      expect(none.lines[target]).toBe('ENETUNREACH');
    },
  );

  it.skipIf(process.getuid?.() !== 0 || spawnSync('ip', ['-V']).status !== 0)(
    'a job with the default network reaches a server in a network namespace the test makes, behind a veth of the host',
    async () => {
      // The host reaches 10.231.<n>.2 through the veth the test adds; the job goes through slirp4netns
      // and the host's routes, as to any machine of the host's networks.
      const n = (process.pid % 250) + 1;
      const ns = `hangar-net-${process.pid}`;
      const [outside, inside] = [`hnh${process.pid % 100_000}`, `hnn${process.pid % 100_000}`];
      const ip = (...args: string[]) => {
        const result = spawnSync('ip', args, { encoding: 'utf8' });
        if (result.status !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr}`);
      };
      ip('netns', 'add', ns);
      // Deleting the namespace takes the veth pair with it, once the server inside has gone.
      cleanups.push(() => void spawnSync('ip', ['netns', 'del', ns]));
      ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside, 'netns', ns);
      ip('addr', 'add', `10.231.${n}.1/30`, 'dev', outside);
      ip('link', 'set', outside, 'up');
      ip('-n', ns, 'addr', 'add', `10.231.${n}.2/30`, 'dev', inside);
      ip('-n', ns, 'link', 'set', inside, 'up');
      const script = `require('node:net').createServer((s) => s.end('hello\\n')).listen(0, '10.231.${n}.2', function () { console.log(this.address().port); })`;
      const server = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      cleanups.push(async () => {
        server.kill('SIGKILL');
        if (server.exitCode === null && server.signalCode === null) await once(server, 'exit');
      });
      const [port] = (await once(server.stdout!, 'data')) as [Buffer];
      const target = `10.231.${n}.2:${port.toString().trim()}`;

      const outbound = await probe([target]);
      expect(outbound.lines[target], outbound.output).toBe('read hello');
      const none = await probe([target], { network: 'none' });
      expect(none.lines[target]).toBe('ENETUNREACH');
    },
  );

  it('the sandbox resolves names through slirp4netns’ DNS, not the host’s resolver', async () => {
    const h = harness();
    const { result, output } = await h.run('cat /etc/resolv.conf; getent hosts localhost');
    expect(result.exitCode, output).toBe(0);
    expect(output).toContain('nameserver 10.0.2.3');
    expect(output).toMatch(/(127\.0\.0\.1|::1)\s+localhost/);
    // A real lookup needs the host's resolver to answer, which no test here controls: see below.
  });

  it.skipIf(spawnSync('getent', ['hosts', 'example.com'], { timeout: 5_000 }).status !== 0)(
    'a name the host resolves, the job resolves too (skipped offline: slirp4netns forwards to the host’s resolver)',
    async () => {
      const h = harness();
      const { result, output } = await h.run('getent hosts example.com');
      expect(result.exitCode, output).toBe(0);
    },
  );

  it('slirp4netns runs while the job runs, under seccomp in a mount namespace of its own, and is gone when it ends', async () => {
    const h = harness();
    const id = jobId();
    const { request, output } = h.request('echo up; read -r _ < /work/fifo || sleep 1', { jobId: id });
    spawnSync('mkfifo', [join(request.workdir, 'fifo')]);
    spawnSync('chmod', ['666', join(request.workdir, 'fifo')]);
    const execution = await h.executor.start(request);
    await until(() => (output().includes('up') ? true : undefined), 'the job to start');
    expect(slirpOf(id)).toHaveLength(1);
    // It parses the job's packets outside the sandbox, so it runs under a syscall filter.
    const [slirp] = slirpOf(id);
    const filtered = () => (/^Seccomp:\s+2$/m.test(readFileSync(`/proc/${slirp}/status`, 'utf8')) ? true : undefined);
    await until(filtered, 'slirp4netns to filter its syscalls', 5_000);
    // And it sees no host file but /etc and /run (--enable-sandbox), whoever runs the agent.
    expect(readdirSync(`/proc/${slirp}/root`).sort()).toEqual(['etc', 'run']);
    writeFileSync(join(request.workdir, 'fifo'), 'go\n');
    expect((await execution.done).exitCode).toBe(0);
    expect(slirpOf(id)).toEqual([]);
  });

  it('slirp4netns counts as the job’s: first for the OOM killer, with few file descriptors', async () => {
    // Every socket the job opens through it is one of slirp4netns' on the host, outside the sandbox:
    // it must not be bounded only by the agent's own (raised) fd limit, nor outlive the job in an OOM.
    const h = harness();
    const id = jobId();
    const { request, output } = h.request('echo up; exec sleep 300', { jobId: id });
    const execution = await h.executor.start(request);
    await until(() => (output().includes('up') ? true : undefined), 'the job to start');
    const [slirp] = slirpOf(id);
    expect(readFileSync(`/proc/${slirp}/oom_score_adj`, 'utf8').trim()).toBe('1000');
    const nofile = /^Max open files\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${slirp}/limits`, 'utf8'));
    expect(Number(nofile?.[1])).toBeLessThanOrEqual(4096);
    expect(Number(nofile?.[2])).toBeLessThanOrEqual(4096);
    await execution.cancel(500);
    await execution.done;
    expect(slirpOf(id)).toEqual([]);
  });

  it('cancel (and so a timeout) ends slirp4netns with the job', async () => {
    const h = harness();
    const id = jobId();
    const { request, output } = h.request('echo up; exec sleep 300', { jobId: id });
    const execution = await h.executor.start(request);
    await until(() => (output().includes('up') ? true : undefined), 'the job to start');
    expect(slirpOf(id)).toHaveLength(1);
    await execution.cancel(500);
    await execution.done;
    expect(slirpOf(id)).toEqual([]);
  });

  it.skipIf(process.getuid?.() !== 0 || hostAddress() === undefined)(
    'with an agent that is not root, slirp4netns sees no home, no agent data dir and no workdir, and the job’s network works',
    async () => {
      // The agent runs as a user of its own (here nobody); slirp4netns then runs as that user on the
      // host, and a flaw in it reachable from the job's packets must not reach the user's files.
      const uid = 65534;
      const gid = 65534;
      const owned = (prefix: string) => {
        const dir = tempDir(tmpdir(), prefix);
        spawnSync('chown', [`${uid}:${gid}`, dir]);
        return dir;
      };
      const home = owned('home');
      writeFileSync(join(home, 'secret'), 'the agent user’s file\n');
      const dataDir = owned('agent-data');
      const workdir = owned('work');
      const log = join(owned('log'), 'log');
      writeFileSync(join(workdir, 'probe.js'), PROBE, { mode: 0o644 });
      // A socket of the agent's user under /run, as its systemd --user bus (/run/user/<uid>/bus,
      // whence systemd-run starts any process as the user), ssh-agent or docker.sock are: slirp4netns'
      // syscall filter lets it connect to one, so it must not see it.
      const runDir = mkdtempSync('/run/hangar-test-');
      cleanups.push(() => rmSync(runDir, { recursive: true, force: true }));
      spawnSync('chown', [`${uid}:${gid}`, runDir]);
      await listen(createServer(), join(runDir, 'bus'));
      const tcp = helloServer();
      await listen(tcp, 0, hostAddress()!);
      const target = `${hostAddress()!}:${(tcp.address() as AddressInfo).port}`;
      const id = jobId();
      const argv = [dataDir, workdir, log, `node /work/probe.js ${target}; echo up; exec sleep 300`, id];
      const agent = spawn(
        'setpriv',
        [
          `--reuid=${uid}`,
          `--regid=${gid}`,
          '--clear-groups',
          '--',
          process.execPath,
          join(import.meta.dirname, 'sandbox-user-agent.mjs'),
          ...argv,
        ],
        { stdio: ['pipe', 'pipe', 'inherit'], env: { PATH: process.env['PATH'] ?? '', HOME: home } },
      );
      cleanups.push(() => {
        agent.kill('SIGKILL');
        slirpOf(id).forEach(killQuietly);
      });
      const said = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
      await until(() => (said().includes('up') ? true : undefined), 'the job to start', 15_000);
      expect(said()).toContain(`${target} read hello`);
      const [slirp] = slirpOf(id);
      expect(slirp).toBeDefined();
      expect(readFileSync(`/proc/${slirp}/status`, 'utf8')).toMatch(new RegExp(`^Uid:\\s+${uid}\\s`, 'm'));
      // Its sandbox is made once the network is up, before the job runs (the job said `up` after).
      const root = `/proc/${slirp}/root`;
      for (const path of [home, join(home, 'secret'), dataDir, workdir, '/usr', '/work', runDir, '/run/user']) {
        expect(existsSync(`${root}${path}`), path).toBe(false);
      }
      expect(readdirSync(root).sort()).toEqual(['etc', 'run']);
      const mounts = readFileSync(`/proc/${slirp}/mountinfo`, 'utf8');
      for (const path of [home, dataDir, workdir]) expect(mounts).not.toContain(path);
      expect(readFileSync(`/proc/${slirp}/status`, 'utf8')).toMatch(/^Seccomp:\s+2$/m);

      agent.stdin!.end();
      const [out] = (await once(agent.stdout!, 'data')) as [Buffer];
      expect(JSON.parse(out.toString())).toMatchObject({ exitCode: null });
      await until(() => (slirpOf(id).length === 0 ? true : undefined), 'slirp4netns to end with the job', 10_000);
    },
    30_000,
  );

  it.skipIf(process.getuid?.() !== 0)(
    'a root agent in supplementary groups gives none of them to the job nor to its slirp4netns',
    async () => {
      // The agent (root, here also in adm and dialout: gid 4, 20) runs the job as the job user.
      const workdir = tempDir(tmpdir(), 'work');
      const dataDir = tempDir(existsSync('/opt') ? '/opt' : tmpdir(), 'agent-data');
      const log = join(tempDir(tmpdir(), 'log'), 'log');
      const id = jobId();
      const argv = [dataDir, workdir, log, 'grep ^Groups: /proc/self/status; echo up; exec sleep 300', id];
      const agent = spawn(
        'setpriv',
        ['--groups=4,20', '--', process.execPath, join(import.meta.dirname, 'sandbox-user-agent.mjs'), ...argv],
        { stdio: ['pipe', 'pipe', 'inherit'], env: { PATH: process.env['PATH'] ?? '' } },
      );
      cleanups.push(() => {
        agent.kill('SIGKILL');
        slirpOf(id).forEach(killQuietly);
      });
      const said = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
      await until(() => (said().includes('up') ? true : undefined), 'the job to start', 15_000);
      expect(readFileSync(`/proc/${agent.pid}/status`, 'utf8')).toMatch(/^Groups:\s+4 20\s*$/m);
      expect(said()).toMatch(/^Groups:\s*$/m);
      const [slirp] = slirpOf(id);
      expect(slirp).toBeDefined();
      expect(readFileSync(`/proc/${slirp}/status`, 'utf8')).toMatch(/^Groups:\s*$/m);
      agent.stdin!.end();
      await once(agent.stdout!, 'data');
    },
    30_000,
  );

  it('slirp4netns dies with its agent', async () => {
    const workdir = tempDir(tmpdir(), 'work');
    const dataDir = tempDir(existsSync('/opt') ? '/opt' : tmpdir(), 'agent-data');
    const id = jobId();
    const log = join(dataDir, 'log');
    // The stand-in agent kills itself 1.5 s after start(): the job is up by then, and slirp4netns with it.
    const argv = [dataDir, workdir, log, 'echo up; exec sleep 300', '1500', id];
    const agent = spawn(process.execPath, [join(import.meta.dirname, 'sandbox-crash.mjs'), ...argv], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    // Counted once the job is up: while it starts, slirp4netns forks a child of its own for a moment
    // (it opens the tap device in the job's namespace and hands it back), which CI once sampled as 2.
    let seen = 0;
    const up = () => existsSync(log) && readFileSync(log, 'utf8').includes('up');
    const watch = setInterval(() => (seen = up() ? Math.max(seen, slirpOf(id).length) : seen), 50);
    try {
      await once(agent, 'exit');
      clearInterval(watch);
      expect(readFileSync(log, 'utf8')).toContain('up');
      expect(seen).toBe(1);
      await until(() => (slirpOf(id).length === 0 ? true : undefined), 'slirp4netns to die with its agent', 10_000);
    } finally {
      clearInterval(watch);
      slirpOf(id).forEach(killQuietly);
    }
  }, 30_000);
});

describe('how slirp4netns is started', () => {
  it('it joins the attempt’s cgroup (its memory counts against the job’s), as root, before it becomes the job user', () => {
    const argv = slirpArgv({
      slirp4netns: '/usr/bin/slirp4netns',
      user: { name: 'hangar-job', uid: 998, gid: 997 },
      cgroupDir: '/cg/hangar-j-1-1',
      target: 4242,
    });
    expect(argv.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(argv[2]).toContain('cgroup.procs');
    expect(argv.slice(3, 6)).toEqual(['hangar-slirp', '/cg/hangar-j-1-1', 'setpriv']);
    expect(argv).toContain('--reuid=998');
    expect(argv.indexOf('--pdeathsig')).toBeLessThan(argv.indexOf('/usr/bin/slirp4netns'));
    // Without a cgroup the shell gets an empty one and joins none.
    const plain = slirpArgv({ slirp4netns: 'slirp4netns', user: undefined, cgroupDir: undefined, target: 1 });
    expect(plain.slice(3, 6)).toEqual(['hangar-slirp', '', 'setpriv']);
  });
});

describe.skipIf(!HAS_BWRAP)('a sandbox host without slirp4netns', () => {
  it('fails a job with the default network, saying what to install, and still runs one with none', async () => {
    const h = harness({ slirp4netnsPath: '/nonexistent/slirp4netns' });
    expect(h.executor.outboundProblem()?.fix).toContain('apt-get install slirp4netns');
    await expect(h.run('echo ran')).rejects.toMatchObject({
      code: 'E_EXECUTOR_UNAVAILABLE',
      message: expect.stringContaining('apt-get install slirp4netns'),
    });
    const none = await h.run('echo ran', { network: 'none' });
    expect(none.output).toContain('ran');
  });
});
