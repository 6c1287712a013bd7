import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SandboxExecutor } from '../../../src/jobs/executors/sandbox.js';
import type { ExecutionRequest, ExecutionResult } from '../../../src/jobs/executors/types.js';
import { fileOutput } from './output.js';

const HAS_BWRAP = process.platform === 'linux' && existsSync('/usr/bin/bwrap');
const cleanups: (() => void | Promise<void>)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function tempDir(parent: string, prefix: string): string {
  const dir = mkdtempSync(join(parent, `hangar-${prefix}-`));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Harness {
  executor: SandboxExecutor;
  dataDir: string;
  run(command: string, extra?: Partial<ExecutionRequest>): Promise<{ result: ExecutionResult; output: string }>;
  request(command: string, extra?: Partial<ExecutionRequest>): { request: ExecutionRequest; output: () => string };
}

/** A data dir under /opt when we may write there: /opt is bound read-only, so hiding it takes a tmpfs. */
function fakeDataDir(): string {
  try {
    return tempDir('/opt', 'agent-data');
  } catch {
    return tempDir(tmpdir(), 'agent-data');
  }
}

function harness(): Harness {
  const dataDir = fakeDataDir();
  const executor = new SandboxExecutor({ dataDir, cgroupParent: null });
  cleanups.push(() => executor.dispose());
  const request = (command: string, extra: Partial<ExecutionRequest> = {}) => {
    const workdir = tempDir(tmpdir(), 'work');
    const log = fileOutput(tempDir(tmpdir(), 'log'));
    cleanups.push(log.close);
    return {
      request: {
        jobId: 'job1',
        attempt: 1,
        command,
        env: {},
        workdir,
        network: 'default' as const,
        limits: {},
        output: log.output,
        timing: () => {},
        checkpoint: () => {},
        ...extra,
      },
      output: log.text,
    };
  };
  return {
    executor,
    dataDir,
    request,
    async run(command, extra) {
      const { request: req, output } = request(command, extra);
      const execution = await executor.start(req);
      const result = await execution.done;
      return { result, output: output() };
    },
  };
}

function processesWithMarker(marker: string): string[] {
  const table = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return table.split('\n').filter((line) => line.includes(marker) && !line.includes('ps -eo'));
}

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
    const { output } = await h.run('echo "$GREETING:$HANGAR_TEST_HOST_SECRET:$HOME"', { env: { GREETING: 'hi' } });
    expect(output).toBe('hi::/work\n');
  });

  it('cancel ends every process inside, including background ones that ignore TERM', async () => {
    const h = harness();
    const marker = `hangar-cancel-${process.pid}-${Date.now()}`;
    // A sleep length no other test uses: the process table is shared with tests running alongside.
    const nap = 100_000 + Math.floor(Math.random() * 800_000);
    const { request, output } = h.request(
      `sh -c 'trap "" TERM; exec sleep ${nap}' ${marker}-a & sleep ${nap} & echo ready; exec sleep ${nap + 1} #${marker}`,
    );
    const execution = await h.executor.start(request);
    for (let i = 0; i < 100 && !output().includes('ready'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(processesWithMarker(marker).length).toBeGreaterThan(0);
    const began = Date.now();
    await execution.cancel(500);
    const result = await execution.done;
    expect(Date.now() - began).toBeLessThan(500 + 2_000);
    expect(result.exitCode === null || result.exitCode !== 0).toBe(true);
    expect(processesWithMarker(marker)).toEqual([]);
    expect(processesWithMarker(`sleep ${nap}`)).toEqual([]);
  });

  it('recover kills a sandbox left from a checkpoint, and leaves an unrelated pid alone', async () => {
    const h = harness();
    let state: Record<string, unknown> = {};
    const { request } = h.request('echo up; sleep 300', { checkpoint: (s) => (state = s) });
    const execution = await h.executor.start(request);
    for (let i = 0; i < 100 && state['pidNamespace'] === undefined; i++) await new Promise((r) => setTimeout(r, 20));
    await h.executor.recover({ ...state, startTime: 1 });
    expect(processesWithMarker('sleep 300').length).toBeGreaterThan(0);
    await h.executor.recover(state);
    await execution.done;
    expect(processesWithMarker('sleep 300')).toEqual([]);
    await h.executor.recover(state);
  });

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
