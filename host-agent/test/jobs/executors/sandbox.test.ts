import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SandboxExecutor } from '../../../src/jobs/executors/sandbox.js';
import { findJobUser } from '../../../src/jobs/executors/sandbox-user.js';
import { killQuietly, processesMatching, uniqueSleep, until } from '../../../../test/support/until.js';
import { bwrapWithoutUserNamespaces, cleanups, harness, tempDir } from './sandbox-harness.js';

const HAS_BWRAP = process.platform === 'linux' && existsSync('/usr/bin/bwrap');
describe.skipIf(!HAS_BWRAP)('sandbox executor (bubblewrap)', () => {
  it('a job exit code is the attempt exit code', async () => {
    const h = harness();
    expect((await h.run('exit 3')).result).toEqual({ exitCode: 3, signal: null });
    expect((await h.run('true')).result).toEqual({ exitCode: 0, signal: null });
  });

  it('a job sees its workspace at /work and can write there', async () => {
    const h = harness();
    const { request, output } = h.request('pwd; cat input.txt; echo made > out.txt');
    writeFileSync(join(request.workdir, 'input.txt'), 'from the workspace\n');
    const result = await (await h.executor.start(request)).done;
    expect(result.exitCode).toBe(0);
    expect(output()).toBe('/work\nfrom the workspace\n');
    expect(readFileSync(join(request.workdir, 'out.txt'), 'utf8')).toBe('made\n');
  });

  it("a job cannot read a file in the agent's data dir or the user's home", async () => {
    const h = harness();
    writeFileSync(join(h.dataDir, 'secret'), 'agent key\n');
    const home = tempDir(homedir(), 'home-secret');
    writeFileSync(join(home, 'secret'), 'user key\n');
    const data = await h.run(`cat ${h.dataDir}/secret`);
    expect(data.result.exitCode).not.toBe(0);
    expect(data.output).not.toContain('agent key');
    const user = await h.run(`cat ${home}/secret; ls ${homedir()}`);
    expect(user.result.exitCode).not.toBe(0);
    expect(user.output).not.toContain('user key');
    expect(user.output).toMatch(/No such file/);
  });

  it('a job cannot see another attempt’s workdir', async () => {
    const h = harness();
    const other = h.request('true').request.workdir;
    writeFileSync(join(other, 'theirs'), 'other job\n');
    const result = await h.run(`cat ${other}/theirs`);
    expect(result.result.exitCode).not.toBe(0);
    expect(result.output).not.toContain('other job');
  });

  it('a job cannot write outside its workdir, and host files stay unchanged', async () => {
    const h = harness();
    const hostTmp = tempDir(tmpdir(), 'host');
    writeFileSync(join(hostTmp, 'file'), 'original\n');
    const targets = [
      '/usr/hangar-test',
      '/etc/passwd',
      '/etc/hangar-test',
      '/root/hangar-test',
      `${hostTmp}/file`,
      '/x',
    ];
    for (const target of targets) {
      const { result } = await h.run(`echo pwned > ${target}`);
      expect(result.exitCode, target).not.toBe(0);
    }
    expect(existsSync('/usr/hangar-test')).toBe(false);
    expect(existsSync('/etc/hangar-test')).toBe(false);
    expect(existsSync('/root/hangar-test')).toBe(false);
    expect(readFileSync(join(hostTmp, 'file'), 'utf8')).toBe('original\n');
    expect(readFileSync('/etc/passwd', 'utf8')).not.toContain('pwned');
  });

  it('with network none the job has no interface but loopback', async () => {
    const h = harness();
    const { result, output } = await h.run('ls /sys/class/net 2>/dev/null || cat /proc/net/dev', { network: 'none' });
    expect(result.exitCode).toBe(0);
    const names = output.includes('|')
      ? output
          .split('\n')
          .slice(2)
          .map((line) => line.split(':')[0]!.trim())
          .filter(Boolean)
      : output.split(/\s+/).filter(Boolean);
    expect(names).toEqual(['lo']);
  });

  it('interleaved stdout and stderr arrive in the order written', async () => {
    const h = harness();
    const { output } = await h.run('for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done');
    expect(output).toBe('out1\nerr1\nout2\nerr2\nout3\nerr3\nout4\nerr4\nout5\nerr5\n');
  });

  it('environment variables reach the job, host ones do not', async () => {
    const h = harness();
    process.env['HANGAR_TEST_HOST_SECRET'] = 'leak';
    cleanups.push(() => void delete process.env['HANGAR_TEST_HOST_SECRET']);
    // Not even in the environment of the sandbox's init (a fork of bwrap), which the job may read.
    const command =
      'echo "$GREETING:$HANGAR_TEST_HOST_SECRET:$HOME:$HANGAR_JOB_ID:$HANGAR_ATTEMPT"; grep -c leak /proc/1/environ';
    const { output } = await h.run(command, { env: { GREETING: 'hi' } });
    expect(output).toBe('hi::/work:job1:1\n0\n');
  });

  it('cancel ends every process inside, including background ones that ignore TERM', async () => {
    const h = harness();
    const marker = `hangar-cancel-${process.pid}-${Date.now()}`;
    const nap = uniqueSleep();
    const last = uniqueSleep();
    const { request, output } = h.request(
      `sh -c 'trap "" TERM; exec ${nap}' ${marker}-a & ${nap} & echo ready; exec ${last} #${marker}`,
    );
    const execution = await h.executor.start(request);
    for (let i = 0; i < 100 && !output().includes('ready'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(processesMatching(marker).length).toBeGreaterThan(0);
    const began = Date.now();
    await execution.cancel(500);
    const result = await execution.done;
    expect(Date.now() - began).toBeLessThan(500 + 2_000);
    expect(result.exitCode === null || result.exitCode !== 0).toBe(true);
    expect(processesMatching(marker)).toEqual([]);
    expect(processesMatching(nap)).toEqual([]);
    expect(processesMatching(last)).toEqual([]);
  });

  it('recover kills a sandbox left from a checkpoint, and leaves an unrelated pid alone', async () => {
    const h = harness();
    let state: Record<string, unknown> = {};
    let checkpointed!: () => void;
    const inNamespace = new Promise<void>((resolve) => (checkpointed = resolve));
    const nap = uniqueSleep();
    const { request } = h.request(`echo up; ${nap}`, {
      checkpoint: (s) => {
        state = s;
        if (s['pidNamespace'] !== undefined) checkpointed();
      },
    });
    const execution = await h.executor.start(request);
    // The checkpoint that names the sandbox's pid namespace (it took over 2 s once under CI's load).
    await inNamespace;
    // Another attempt's checkpoint whose pid this bwrap now holds: another start time, other marks.
    await h.executor.recover({ ...state, startTime: 1, jobId: 'another-job' });
    expect(processesMatching(nap).length).toBeGreaterThan(0);
    await h.executor.recover(state);
    await execution.done;
    expect(processesMatching(nap)).toEqual([]);
    await h.executor.recover(state);
  });

  it('a job dies with its agent, however soon after its start the agent is killed', async () => {
    // Eight stand-in agents (sandbox-crash.mjs, on the built executor), each SIGKILLed from at once
    // to 40 ms after start(): inside the window where bwrap and the sandbox's first process have not
    // yet asked to die with their parent (over 100 ms under load). As b3b2499 started sandboxes, 13
    // of 30 such jobs ran on here (bwrap's init reparented to the host's init) or sat forever in a
    // bwrap that never made the sandbox; with either of the two watchers alone, 2 and 3 of 30.
    const naps = [0, 0, 0, 0, 10, 20, 30, 40].map((delay) => ({ delay, nap: uniqueSleep() }));
    const alive = () => naps.flatMap(({ nap }) => processesMatching(nap));
    try {
      await Promise.all(
        naps.map(async ({ delay, nap }) => {
          const workdir = tempDir(tmpdir(), 'work');
          const dataDir = tempDir(existsSync('/opt') ? '/opt' : tmpdir(), 'agent-data');
          const argv = [dataDir, workdir, join(dataDir, 'log'), `${nap} & ${nap}`, String(delay)];
          const agent = spawn(process.execPath, [join(import.meta.dirname, 'sandbox-crash.mjs'), ...argv], {
            stdio: ['ignore', 'ignore', 'inherit'],
          });
          const [, signal] = (await once(agent, 'exit')) as [number | null, string | null];
          expect(signal).toBe('SIGKILL');
        }),
      );
      // Whatever of the jobs had started goes with its agent: nothing of them left, within 10 s.
      await until(() => (alive().length === 0 ? true : undefined), 'every job to die with its agent', 10_000);
    } finally {
      alive().forEach(killQuietly);
    }
  }, 60_000);

  it('memory limits apply without cgroup v2 (RLIMIT_AS)', async () => {
    const h = harness();
    const { output } = await h.run('cat /proc/self/limits | grep "address space"', { limits: { memoryMb: 256 } });
    expect(output).toContain(String(256 * 1024 * 1024));
  });
});

describe('sandbox executor availability', () => {
  it('missing bubblewrap says which package to install', async () => {
    const executor = new SandboxExecutor({ dataDir: tmpdir(), bwrapPath: '/nonexistent/bwrap', cgroupParent: null });
    const reason = await executor.unavailableReason();
    if (process.platform === 'linux') expect(reason).toContain('install bubblewrap (apt-get install bubblewrap)');
    else expect(reason).toContain('Linux');
    mkdirSync(tmpdir(), { recursive: true });
  });
});

const AS_ROOT = process.getuid?.() === 0;

/** The job user tests run jobs as: one of its own, as the installer makes (no passwd entry is needed to run as it). */
const JOB_USER = { name: 'hangar-job', uid: 64_999, gid: 64_999 };

describe.skipIf(!HAS_BWRAP || !AS_ROOT)('a sandbox run by an agent that is root gives root’s powers up', () => {
  it('bwrap puts the job in a user namespace of its own, with no capability and no further namespaces', () => {
    const h = harness();
    const args = h.executor.sandboxArgs({ workdir: '/w', network: 'default', env: {}, command: 'true' });
    const flags = args.slice(0, args.indexOf('--'));
    expect(flags).toEqual(expect.arrayContaining(['--unshare-user', '--disable-userns', '--die-with-parent']));
    expect(flags).toEqual(expect.arrayContaining(['--new-session', '--unshare-pid']));
    expect(flags[flags.indexOf('--cap-drop') + 1]).toBe('ALL');
    // bwrap, unprivileged, binds what the launcher bound for it: the workdir sits in the 0700 data dir.
    expect(flags[flags.indexOf('--bind') + 2]).toBe('/work');
    expect(flags[flags.indexOf('--bind') + 1]).toBe('/run/hangar-sandbox');
  });

  it('a job runs as the job user, owns its /work and has no capability', async () => {
    const h = harness({ jobUser: JOB_USER });
    const { request, output } = h.request('id -u; id -G; grep -E "^Cap(Prm|Eff|Bnd):" /proc/self/status; touch made');
    writeFileSync(join(request.workdir, 'given.txt'), 'from the workspace\n');
    expect((await (await h.executor.start(request)).done).exitCode).toBe(0);
    const lines = output().trim().split('\n');
    expect(lines.slice(0, 2)).toEqual(['64999', '64999']);
    expect(lines.slice(2).map((line) => line.split(/\s+/)[1])).toEqual(Array(3).fill('0000000000000000'));
    for (const name of ['.', 'given.txt', 'made']) {
      expect(statSync(join(request.workdir, name)).uid, name).toBe(JOB_USER.uid);
    }
  });

  it('without a hangar-job user, jobs run as nobody', async () => {
    const passwd = join(tempDir(tmpdir(), 'passwd'), 'passwd');
    writeFileSync(
      passwd,
      'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
    );
    expect(findJobUser(passwd)).toEqual({ name: 'nobody', uid: 65534, gid: 65534 });
    writeFileSync(passwd, `${readFileSync(passwd, 'utf8')}hangar-job:x:998:997::/nonexistent:/usr/sbin/nologin\n`);
    expect(findJobUser(passwd)).toEqual({ name: 'hangar-job', uid: 998, gid: 997 });
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\nnobody:x:0:0:a root in disguise:/:/bin/sh\n');
    expect(findJobUser(passwd)).toBeUndefined();
  });

  it('a process and a memory limit apply when the job names none, soft and hard alike', async () => {
    const limitHost = {
      totalMemoryBytes: 8 * 1024 ** 3,
      cpuCount: 2,
      prlimit: '/usr/bin/prlimit',
      taskset: '/usr/bin/taskset',
    };
    const h = harness({ limitHost });
    const { output } = await h.run('grep -E "^Max (processes|address space)" /proc/self/limits');
    // 16 GiB of address space: the floor for hosts with less RAM (see defaultAddressSpaceMb).
    expect(output).toMatch(/^Max processes\s+2048\s+2048\s/m);
    expect(output).toMatch(new RegExp(`^Max address space\\s+${16 * 1024 ** 3}\\s+${16 * 1024 ** 3}\\s`, 'm'));
  });

  it('the process limit counts each sandbox alone: two jobs of one user each start 50 of their 64', async () => {
    const h = harness({ jobUser: JOB_USER });
    // The sleeps end with the sandbox: its pid namespace goes when the job's shell exits.
    const command = 'for i in $(seq 1 50); do sleep 30 & done; echo started all';
    const [first, second] = await Promise.all([
      h.run(command, { limits: { pids: 64 } }),
      h.run(command, { limits: { pids: 64 } }),
    ]);
    expect(first.output).toBe('started all\n');
    expect(second.output).toBe('started all\n');
  });
});

describe.skipIf(!HAS_BWRAP)('a sandbox where the kernel refuses user namespaces', () => {
  it('refuses to run a job, saying what to enable, and runs nothing', async () => {
    const h = harness({ bwrapPath: bwrapWithoutUserNamespaces() });
    const reason = await h.executor.unavailableReason();
    expect(reason).toContain('cannot create an unprivileged user namespace here');
    expect(reason).toContain('ENOSPC');
    for (const fix of [
      'sysctl -w kernel.unprivileged_userns_clone=1',
      'sysctl -w user.max_user_namespaces=15000',
      'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0',
    ]) {
      expect(reason).toContain(fix);
    }
    const { request } = h.request('touch ran');
    await expect(h.executor.start(request)).rejects.toMatchObject({ code: 'E_EXECUTOR_UNAVAILABLE' });
    expect(existsSync(join(request.workdir, 'ran'))).toBe(false);
  });

  it('names the switch that forbids them when one does (Ubuntu’s AppArmor restriction)', async () => {
    const sysctlDir = tempDir(tmpdir(), 'sysctl');
    mkdirSync(join(sysctlDir, 'kernel'));
    writeFileSync(join(sysctlDir, 'kernel', 'apparmor_restrict_unprivileged_userns'), '1\n');
    const h = harness({ bwrapPath: bwrapWithoutUserNamespaces(), sysctlDir });
    const problem = await h.executor.check();
    expect(problem?.problem).toContain('kernel.apparmor_restrict_unprivileged_userns forbids them');
    expect(problem?.fix).toContain('sysctl -w kernel.apparmor_restrict_unprivileged_userns=0');
    expect(problem?.fix).not.toContain('max_user_namespaces');
  });
});
