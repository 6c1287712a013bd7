import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { launchArgv } from '../../../src/jobs/executors/sandbox-launch.js';
import { prepareLimits } from '../../../src/jobs/executors/sandbox-limits.js';

const GIB = 1024 ** 3;
const HOST = { totalMemoryBytes: 8 * GIB, cpuCount: 4, prlimit: '/usr/bin/prlimit', taskset: '/usr/bin/taskset' };
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/**
 * The cgroup v2 path. This CI host mounts cgroup v1 controllers, so a plain directory stands in for
 * the agent's delegated cgroup: what is checked is which interface files get which values, and that
 * the launcher joins the attempt's cgroup; the kernel's enforcement is not seen here.
 */
describe('sandbox limits with a writable cgroup v2', () => {
  it('an attempt gets pids.max and memory.max by default, cpu.max only when asked', () => {
    const parent = mkdtempSync(join(tmpdir(), 'hangar-cgroup-'));
    dirs.push(parent);
    const limits = prepareLimits({}, parent, 'j-1-1', HOST);
    expect(limits).toMatchObject({ method: 'cgroup-v2', cgroupDir: join(parent, 'hangar-j-1-1'), inner: [] });
    const read = (name: string) => readFileSync(join(parent, 'hangar-j-1-1', name), 'utf8');
    expect(read('pids.max')).toBe('2048');
    expect(read('memory.max')).toBe(String(6 * GIB));
    expect(readdirSync(join(parent, 'hangar-j-1-1'))).not.toContain('cpu.max');
    prepareLimits({ cpus: 1.5, memoryMb: 512, pids: 100 }, parent, 'j-2-1', HOST);
    const asked = (name: string) => readFileSync(join(parent, 'hangar-j-2-1', name), 'utf8');
    expect([asked('cpu.max'), asked('memory.max'), asked('pids.max')]).toEqual([
      '150000 100000',
      String(512 * 1024 ** 2),
      '100',
    ]);
  });

  it('the launcher joins the cgroup as root, before it becomes the job user', () => {
    const argv = launchArgv(
      {
        user: { name: 'hangar-job', uid: 998, gid: 997 },
        workdir: '/data/w',
        cgroupDir: '/cg/hangar-j-1-1',
        bwrap: '/usr/bin/bwrap',
        agentPid: 4242,
        network: 'none',
      },
      ['--unshare-user'],
    );
    const script = argv[argv.indexOf('-c') + 1]!;
    expect(script.indexOf('cgroup.procs')).toBeLessThan(script.indexOf('setpriv'));
    const rest = argv.slice(argv.indexOf('-c') + 2);
    expect(rest.slice(0, 6)).toEqual([
      'hangar-sandbox',
      '/cg/hangar-j-1-1',
      '/data/w',
      '/run/hangar-sandbox',
      '998',
      '997',
    ]);
    // Then the last step as the job user: a shell, which checks its parent is still the agent, runs bwrap.
    expect(rest.slice(6, 8)).toEqual(['/bin/sh', '-c']);
    expect(rest.slice(9)).toEqual(['hangar-sandbox', '4242', '/usr/bin/bwrap', '--unshare-user']);
  });
});

describe('sandbox limits without cgroup v2', () => {
  it('prlimit sets processes and address space inside the sandbox, taskset the CPUs', () => {
    const limits = prepareLimits({ cpus: 1.5, memoryMb: 512 }, undefined, 'j-1-1', HOST);
    expect(limits.inner).toEqual([
      '/usr/bin/prlimit',
      '--nproc=2048',
      `--as=${512 * 1024 ** 2}`,
      '--',
      '/usr/bin/taskset',
      '-c',
      '0-1',
    ]);
    // The default address space: the host's RAM, but never below 16 GiB (V8 reserves ~10 GiB for WebAssembly).
    expect(prepareLimits({}, undefined, 'j-1-1', HOST).inner).toContain(`--as=${16 * GIB}`);
    expect(prepareLimits({}, undefined, 'j-1-1', { ...HOST, totalMemoryBytes: 64 * GIB }).inner).toContain(
      `--as=${64 * GIB}`,
    );
  });
});
