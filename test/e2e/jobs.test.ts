import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { HANGAR_BIN, hangarFrom, removeDir, type CliResult } from '../support/processes.js';

/**
 * Build jobs through the `hangar` CLI against a real agent process, reached through a TCP proxy
 * that can cut the link. Jobs use the shell executor so the tests do not depend on bubblewrap.
 * One host for all: each test finds its own job by the id it was given (not by counting jobs),
 * leaves no job running, and writes only files of its own into the workspace (a new file makes a
 * new tree to upload; hello.txt stays as it was).
 */
describe('build jobs through the CLI', () => {
  const box = usePairedHost({
    shared: true,
    viaProxy: true,
    name: 'local',
    workspace: { 'hello.txt': 'hello from the workspace\n' },
  });

  /** `hangar …` run from the workspace folder, as a user in their project would. */
  const hangar = (args: string[], timeoutMs = 30_000): Promise<CliResult> =>
    hangarFrom(box.home, args, { cwd: box.workspace, timeoutMs });
  const run = (command: string, ...extra: string[]) => hangar(['run', '--executor', 'shell', '-c', command, ...extra]);

  it("a job's exit status becomes hangar run's, and it ran in the uploaded workspace", async () => {
    const ok = await run('cat hello.txt');
    expect(ok.stderr).toMatch(/job j-[a-z0-9]+ succeeded/);
    expect(ok).toMatchObject({ code: 0, stdout: 'hello from the workspace\n' });
    const failed = await run('echo failing; exit 7');
    expect(failed).toMatchObject({ code: 7, stdout: 'failing\n' });
    expect(failed.stderr).toContain('failed with exit status 7');
  });

  it('a job over its timeout ends as timed out, with status 124', async () => {
    const result = await run('echo started; sleep 30', '--timeout', '1s');
    expect(result.stdout).toMatch(/^started\n/);
    expect(result.stderr).toContain('timed out');
    expect(result.code).toBe(124);
  });

  it('the second run of the same tree skips the upload', async () => {
    // A file no earlier test's tree had: the first run's tree is new to the host.
    writeFileSync(join(box.workspace, 'skip.txt'), 'first\n');
    const first = await run('true');
    expect(first.stderr).not.toContain('workspace already on host');
    const second = await run('true');
    expect(second.code).toBe(0);
    expect(second.stderr).toContain('workspace already on host');
    writeFileSync(join(box.workspace, 'skip.txt'), 'changed\n');
    const third = await run('cat skip.txt');
    expect(third.stderr).not.toContain('workspace already on host');
    expect(third.stdout).toBe('changed\n');
  });

  it('a job that prints 50 MB: the log arrives complete and in order', async () => {
    const lines = 6_500_000;
    const result = await run(`seq 1 ${lines}`);
    expect(result.code).toBe(0);
    expectSequence(result.stdout, 1, lines);
    expect(result.stdout.length).toBeGreaterThan(50_000_000);
  }, 120_000);

  it('--detach prints the job id; hangar logs --follow streams it to the end with its status', async () => {
    const detached = await run('echo one; sleep 1; echo two; exit 3', '--detach');
    expect(detached.code).toBe(0);
    const id = detached.stdout.trim();
    expect(id).toMatch(/^j-[a-z0-9]+$/);
    const followed = await hangar(['logs', id, '--follow']);
    expect(followed).toMatchObject({ code: 3, stdout: 'one\ntwo\n' });
    const again = await hangar(['logs', id, '--from', '4']);
    expect(again).toMatchObject({ code: 0, stdout: 'two\n' });
    const listed = await hangar(['jobs', '--json']);
    const jobs = JSON.parse(listed.stdout) as { host: string; jobs: { id: string; state: string }[] }[];
    expect(jobs[0]!.jobs.find((j) => j.id === id)?.state).toBe('failed');
    const shown = await hangar(['jobs', 'show', id]);
    expect(shown.stdout).toContain(`job       ${id} on local`);
    expect(shown.stdout).toMatch(/attempts\n#\s+STATE\s+EXIT\s+LOG\s+QUEUED/);
  });

  it('a follower whose link is cut mid-log resumes with nothing lost or doubled', async () => {
    // About 2 million lines over 2 s or more, so the cut lands mid-stream.
    const command = 'i=0; while [ $i -lt 200 ]; do seq $((i*10000+1)) $((i*10000+10000)); i=$((i+1)); sleep 0.01; done';
    const detached = await run(command, '--detach');
    const id = detached.stdout.trim();
    const follower = spawn(process.execPath, [HANGAR_BIN, 'logs', id, '--follow'], {
      cwd: box.workspace,
      env: { ...process.env, HANGAR_HOME: box.home },
    });
    const out: Buffer[] = [];
    let received = 0;
    let stderr = '';
    follower.stdout.on('data', (chunk: Buffer) => {
      out.push(chunk);
      received += chunk.length;
    });
    follower.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number>((resolve) => follower.on('exit', (code) => resolve(code ?? -1)));
    while (received < 100_000) await new Promise((r) => setTimeout(r, 10));
    box.proxy!.cutAll();
    expect(await exited).toBe(0);
    expect(stderr).toContain('reconnecting');
    expectSequence(Buffer.concat(out).toString(), 1, 2_000_000);
  }, 60_000);

  it('a reader that stops reading holds the log back: the command does not take it all into memory', async () => {
    const bytes = 256_000_000;
    const detached = await run(`yes hangar-backpressure | head -c ${bytes}`, '--detach');
    const id = detached.stdout.trim();
    const follower = spawn(process.execPath, [HANGAR_BIN, 'logs', id, '--follow'], {
      cwd: box.workspace,
      env: { ...process.env, HANGAR_HOME: box.home },
    });
    let received = 0;
    let paused: (() => void) | undefined;
    const pausedOnce = new Promise<void>((resolve) => (paused = resolve));
    follower.stdout.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= 1_000_000 && paused) {
        follower.stdout.pause();
        paused();
        paused = undefined;
      }
    });
    const exited = new Promise<number>((resolve) => follower.on('exit', (code) => resolve(code ?? -1)));
    await pausedOnce;
    const memory = (field: string) =>
      Number(
        new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${follower.pid}/status`, 'utf8'))![1],
      ) * 1024;
    const rssAtPause = memory('VmRSS');
    // The whole log is on the host (the job ended), and the command had time to take more of it.
    for (;;) {
      const listed = JSON.parse((await hangar(['jobs', '--json'])).stdout) as {
        jobs: { id: string; state: string }[];
      }[];
      if (listed[0]!.jobs.find((job) => job.id === id)?.state === 'succeeded') break;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const peak = memory('VmHWM');
    follower.stdout.resume();
    expect(await exited).toBe(0);
    // Whole lines of 20 bytes.
    expect(received).toBe(bytes);
    expect(peak - rssAtPause).toBeLessThan(64 * 1024 * 1024);
  }, 120_000);

  it('artifacts come back into ./hangar-artifacts/<job>/ with their sha256 checked', async () => {
    const result = await run(
      'mkdir -p out/nested && echo report > out/report.txt && head -c 300000 /dev/urandom > out/nested/app.bin',
      '--artifacts',
      'out/**',
    );
    expect(result.code).toBe(0);
    const id = /job (j-[a-z0-9]+)/.exec(result.stderr)![1]!;
    const shown = JSON.parse((await hangar(['jobs', 'show', id, '--json'])).stdout) as {
      artifacts: { path: string; sha256: string; size: number }[];
    };
    expect(shown.artifacts.map((a) => a.path).sort()).toEqual(['out/nested/app.bin', 'out/report.txt']);
    for (const artifact of shown.artifacts) {
      const bytes = readFileSync(join(box.workspace, 'hangar-artifacts', id, artifact.path));
      expect(bytes.length).toBe(artifact.size);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(artifact.sha256);
    }
    const again = await hangar(['artifacts', id, '--out', 'elsewhere']);
    expect(again.code).toBe(0);
    expect(readFileSync(join(box.workspace, 'elsewhere', 'out', 'report.txt'), 'utf8')).toBe('report\n');
    // Downloaded artifacts are not packed into the next workspace.
    const next = await run('ls hangar-artifacts 2>/dev/null | wc -l');
    expect(next.stdout.trim()).toBe('0');
    expect(existsSync(join(box.workspace, 'hangar-artifacts', id))).toBe(true);
  });

  it('a big artifact (hashed by the core off its event loop) lands whole; changed on the host, it is refused', async () => {
    const result = await run(
      'mkdir -p out && head -c 3000000 /dev/urandom > out/big.bin',
      '--artifacts',
      'out/big.bin',
    );
    expect(result.code).toBe(0);
    const id = /job (j-[a-z0-9]+)/.exec(result.stderr)![1]!;
    const shown = JSON.parse((await hangar(['jobs', 'show', id, '--json'])).stdout) as {
      artifacts: { path: string; sha256: string; size: number }[];
    };
    const [artifact] = shown.artifacts;
    const landed = readFileSync(join(box.workspace, 'hangar-artifacts', id, 'out', 'big.bin'));
    expect(landed.length).toBe(3_000_000);
    expect(createHash('sha256').update(landed).digest('hex')).toBe(artifact!.sha256);
    // One byte of the host's copy changes after its sha256 was recorded: the download is refused.
    const onHost = join(box.dataDir, 'jobs', id, '1', 'artifacts', 'out', 'big.bin');
    const bytes = readFileSync(onHost);
    bytes[2_000_000]! ^= 1;
    writeFileSync(onHost, bytes);
    const again = await hangar(['artifacts', id, '--out', 'damaged']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('arrived damaged');
    // Downloading again cannot help when the host's copy itself changed: it says what will.
    expect(again.stderr).toContain(`hangar retry ${id}`);
    expect(existsSync(join(box.workspace, 'damaged', 'out', 'big.bin'))).toBe(false);
  });

  it('an artifact that links out of the workdir fails the job: status 126, the reason and what to do', async () => {
    const result = await run('echo built; ln -s /etc/hostname app.bin', '--artifacts', 'app.bin');
    expect(result.code).toBe(126);
    expect(result.stdout).toMatch(/^built\n/);
    // The command exited 0: the last line says why the job failed, not "exit status 0".
    const last = result.stderr.trim().split('\n').at(-1)!;
    expect(last).toMatch(
      /^job j-[a-z0-9]+ failed: artifact "app\.bin" resolves to \/etc\/hostname, outside the job's workdir/,
    );
    expect(last).toContain('have the job copy the file into its workdir');
  });

  it('an artifact whose copy on the host became a link is refused, naming the retry that brings it back', async () => {
    const result = await run('mkdir -p out && echo v1 > out/v.txt', '--artifacts', 'out/v.txt');
    expect(result.code).toBe(0);
    const id = /job (j-[a-z0-9]+)/.exec(result.stderr)![1]!;
    const onHost = join(box.dataDir, 'jobs', id, '1', 'artifacts', 'out', 'v.txt');
    rmSync(onHost);
    symlinkSync('/etc/hostname', onHost);
    const refused = await hangar(['artifacts', id, '--out', 'swapped']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('"out/v.txt" on the host is not the regular file the agent collected');
    expect(refused.stderr).toContain(`hangar retry ${id}`);
    // What it says to do works: the retry collects the artifact anew, and it downloads.
    expect((await hangar(['retry', id])).code).toBe(0);
    expect((await hangar(['logs', id, '--follow'])).code).toBe(0);
    const again = await hangar(['artifacts', id, '--out', 'swapped']);
    expect(again.code).toBe(0);
    expect(readFileSync(join(box.workspace, 'swapped', 'out', 'v.txt'), 'utf8')).toBe('v1\n');
    // Gone from the host: not found, and the same way back.
    rmSync(join(box.dataDir, 'jobs', id, '2', 'artifacts', 'out', 'v.txt'));
    const gone = await hangar(['artifacts', id, '--out', 'gone']);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toContain('"out/v.txt" is gone from the host');
    expect(gone.stderr).toContain(`hangar retry ${id}`);
  });

  it('a failed attempt is retried and followed into the new attempt', async () => {
    const marker = join(box.workspace, '..', `${box.workspace.split('/').pop()}-tried`);
    const result = await run(
      `if [ -f ${marker} ]; then echo second; else touch ${marker}; echo first; exit 3; fi`,
      '--retries',
      '1',
    );
    removeDir(marker);
    expect(result.stdout).toBe('first\nsecond\n');
    expect(result.stderr).toContain('── attempt 2 ──');
    expect(result.code).toBe(0);
  }, 60_000);
});

/** The text is exactly the lines from..to, one number per line, in order. */
function expectSequence(text: string, from: number, to: number): void {
  const lines = text.split('\n');
  expect(lines.pop()).toBe('');
  expect(lines.length).toBe(to - from + 1);
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== String(from + i)) {
      expect(`line ${i}: ${lines[i]}`).toBe(`line ${i}: ${from + i}`);
    }
  }
}
