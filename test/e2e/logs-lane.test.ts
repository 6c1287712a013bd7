import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HangarCore, openLane } from '@hangar/desktop/core';
import { usePairedHost } from '../support/paired-host.js';
import { HANGAR_BIN, hangarFrom, type CliResult } from '../support/processes.js';
import { until } from '../support/until.js';

/** `hangar …` in a box's home, with its stdout as bytes (a log of random bytes is no text). */
function hangarBytesIn(box: { home: string; workspace: string }, args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [HANGAR_BIN, ...args], {
    cwd: box.workspace,
    env: { ...process.env, ...env, HANGAR_HOME: box.home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const done = new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    }),
  );
  return { done, received: () => out.reduce((n, chunk) => n + chunk.length, 0) };
}

/**
 * `hangar logs` (and `--follow`) on a lane (lane/PROTOCOL.md, "Purposes: log"): the agent's native
 * relay reads the attempt's log file as it grows, the command's writes it to stdout (a pipe here).
 * The agent logs each log lane, so a log on the mux fails the tests that expect a lane. Through a
 * TcpProxy that can stall, cut and refuse lanes alone.
 */
describe('logs over a lane', () => {
  // One host for these: each reads only the agent's log written since it began, waits for its own
  // jobs to end (or cancels them), and leaves the proxy passing lanes again.
  const box = usePairedHost({
    shared: true,
    viaProxy: true,
    name: 'local',
    workspace: { 'hello.txt': 'hi\n' },
    agent: { logLevel: 'info' },
  });
  let mark = 0;
  beforeEach(() => void (mark = box.agent.stderr().length));
  afterEach(() => {
    box.proxy!.stallWhere(undefined);
    box.proxy!.refuseWhere(undefined);
  });
  /** The agent's log since this test began. */
  const agentLog = () => box.agent.stderr().slice(mark);
  const hangar = (args: string[], env: Record<string, string> = {}): Promise<CliResult> =>
    hangarFrom(box.home, args, { cwd: box.workspace, timeoutMs: 60_000, env });

  const hangarBytes = (args: string[], env: Record<string, string> = {}) => hangarBytesIn(box, args, env);

  /** A detached job printing random bytes (the same bytes kept as an artifact); its id. */
  async function randomLog(script: string): Promise<string> {
    const result = await hangar([
      'run',
      '--detach',
      '--executor',
      'shell',
      '-c',
      `mkdir -p out && ${script}`,
      '--artifacts',
      'out/log.bin',
    ]);
    expect(result.code).toBe(0);
    return /(j-[a-z0-9]+)/.exec(result.stdout + result.stderr)![1]!;
  }
  const artifactOf = async (id: string) =>
    (
      JSON.parse((await hangar(['jobs', 'show', id, '--json'])).stdout) as {
        artifacts: { sha256: string; size: number }[];
      }
    ).artifacts[0]!;

  /** Waits for the job to succeed (through the link, not its log). */
  const ended = (id: string) =>
    until(async () => {
      const shown = JSON.parse((await hangar(['jobs', 'show', id, '--json'])).stdout) as { state: string };
      return shown.state === 'succeeded' ? true : undefined;
    }, `job ${id} to succeed`);
  const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
  const lanesSent = () => agentLog().split('log sent on a lane').length - 1;

  it('a followed log of random bytes arrives byte for byte on a lane while the job writes it', async () => {
    const id = await randomLog(
      'sleep 1; head -c 6000000 /dev/urandom | tee out/log.bin; sleep 1; head -c 4000000 /dev/urandom | tee -a out/log.bin',
    );
    const followed = hangarBytes(['logs', id, '--follow']);
    const result = await followed.done;
    expect(result.stderr).toMatch(new RegExp(`job ${id} succeeded`));
    expect(result.code).toBe(0);
    expect(lanesSent()).toBe(1);
    const artifact = await artifactOf(id);
    expect(lanesSent()).toBe(1);
    // The log is the job's stdout and nothing else, and the command's newline rule after it.
    const body = result.stdout.subarray(0, artifact.size);
    expect(sha256(body)).toBe(artifact.sha256);
    expect(result.stdout.length - artifact.size).toBe(body[body.length - 1] === 0x0a ? 0 : 1);
    expect(lanesSent()).toBe(1);
    expect(agentLog()).toMatch(/"how":"eof","bytes":10000000,"msg":"log lane ended"/);
    // Plain `hangar logs` of the ended job: a lane too, the same bytes.
    const plain = await hangarBytes(['logs', id]).done;
    expect(plain.code).toBe(0);
    expect(sha256(plain.stdout)).toBe(artifact.sha256);
    expect(lanesSent()).toBe(2);
  }, 90_000);

  it('a lane cut mid-log resumes from the bytes written: nothing lost or doubled', async () => {
    const id = await randomLog('head -c 8000000 /dev/urandom | tee out/log.bin');
    await ended(id);
    const artifact = await artifactOf(id);
    // The next lane carries 3 MB, then nothing: ACCEPT (under 4 KiB) and 45 whole DATA records of
    // 64 KiB (65,557 bytes sealed), and part of the 46th, which is never written. Cut there.
    box.proxy!.stallWhere('HGLANE/1', 3_000_000);
    const had = 45 * 65_536;
    const reading = hangarBytes(['logs', id]);
    await until(
      () => (box.proxy!.stalledBytes > 0 && reading.received() === had ? true : undefined),
      'the lane to stall',
    );
    box.proxy!.stallWhere(undefined);
    expect(box.proxy!.cutWhere('HGLANE/1')).toBe(1);
    const result = await reading.done;
    expect(result.code).toBe(0);
    expect(result.stdout.length).toBe(artifact.size);
    expect(sha256(result.stdout)).toBe(artifact.sha256);
    const froms = [...agentLog().matchAll(/"from":(\d+),"follow":false,"msg":"log sent on a lane"/g)].map((m) =>
      Number(m[1]),
    );
    expect(froms.slice(-2)).toEqual([0, had]);
  }, 90_000);

  it('falls back to the link when lanes are off or the lane port refuses them', async () => {
    const id = await randomLog('head -c 3000000 /dev/urandom | tee out/log.bin');
    await ended(id);
    const artifact = await artifactOf(id);
    const before = lanesSent();
    const off = await hangarBytes(['logs', id, '--follow'], { HANGAR_LANES: 'off' }).done;
    expect(off.code).toBe(0);
    expect(sha256(off.stdout.subarray(0, artifact.size))).toBe(artifact.sha256);
    box.proxy!.refuseWhere('HGLANE/1');
    const refused = await hangarBytes(['logs', id, '--follow']).done;
    box.proxy!.refuseWhere(undefined);
    expect(refused.code).toBe(0);
    expect(refused.stdout.equals(off.stdout)).toBe(true);
    expect(refused.stderr).toBe(off.stderr);
    expect(lanesSent()).toBe(before);
  }, 90_000);

  it.each([
    [
      'a symlink to another file',
      (secret: string) => `ln -s ${secret} ../log.swap && mv ../log.swap ../log`,
      'a symlink is in its place',
    ],
    ['a FIFO', () => 'mkfifo ../log.swap && mv ../log.swap ../log', 'not a regular file'],
    [
      // The attempt's folder (jobs/<job>/1) moved aside, a symlink to a folder whose log is the secret in its place.
      'a symlink in its folders',
      (secret: string) => {
        const fake = `${secret}.attempt-${Date.now()}`;
        return `mkdir ${fake} && cp ${secret} ${fake}/log && cd ../.. && mv 1 1.old && ln -s ${fake} 1 && cd 1.old/work`;
      },
      'a folder of its path is a symlink',
    ],
  ])(
    'a running log swapped for %s is refused, on a lane and on the link, not sent',
    async (_what, swap, why) => {
      // A file of the agent's user outside the job (its shell job could read it itself; a paired
      // device should still get only the attempt's own log, as openArtifactCopy has it for
      // artifacts). A FIFO: opening it would wait for a writer (the agent's whole event loop, on a lane).
      const secret = join(box.home, 'not-the-log.txt');
      const swapped = join(box.home, `swapped-${Date.now()}`);
      writeFileSync(secret, 'SECRET-'.repeat(200));
      const result = await hangar([
        'run',
        '--detach',
        '--executor',
        'shell',
        '--no-workspace',
        '-c',
        `echo before; ${swap(secret)} && echo after && touch ${swapped}; sleep 60`,
      ]);
      expect(result.code).toBe(0);
      const id = /(j-[a-z0-9]+)/.exec(result.stdout + result.stderr)![1]!;
      try {
        await until(() => (existsSync(swapped) ? true : undefined), 'the job to swap its log');
        for (const env of [{}, { HANGAR_LANES: 'off' }] as Record<string, string>[]) {
          const logs = await hangarFrom(box.home, ['logs', id], { cwd: box.workspace, timeoutMs: 15_000, env });
          expect(logs.stdout).not.toContain('SECRET');
          expect(logs.stderr).toContain(`not the log the agent wrote (${why})`);
          expect(logs.code).not.toBe(0);
        }
      } finally {
        await hangar(['cancel', id]);
      }
    },
    60_000,
  );

  it('the agent keeps no fd of a log lane its reader left: following, read, waiting past the end', async () => {
    /** The agent's fds on files under its jobs dir (the running attempt's log holds one of its own). */
    const jobFds = () => {
      const dir = `/proc/${box.agent.child.pid}/fd`;
      return readdirSync(dir).filter((fd) => {
        try {
          return readlinkSync(join(dir, fd)).startsWith(join(box.dataDir, 'jobs'));
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    };
    const result = await hangar([
      'run',
      '--detach',
      '--executor',
      'shell',
      '--no-workspace',
      '-c',
      'echo hi; sleep 60',
    ]);
    expect(result.code).toBe(0);
    const id = /(j-[a-z0-9]+)/.exec(result.stdout + result.stderr)![1]!;
    const core = await HangarCore.open({ home: box.home, logger: pino({ level: 'silent' }) });
    try {
      await until(async () => {
        const shown = JSON.parse((await hangar(['jobs', 'show', id, '--json'])).stdout) as { state: string };
        return shown.state === 'running' ? true : undefined;
      }, `job ${id} to run`);
      const running = jobFds();
      const lane = (hello: { from: number; follow: boolean }) =>
        openLane(core.connection('local'), { purpose: 'log', id, ...hello });
      for (const follow of [true, false]) {
        const before = lanesSent();
        const taken = await lane({ from: 0, follow });
        await until(() => (lanesSent() === before + 1 ? true : undefined), 'the agent to send the log');
        taken.socket.destroy(); // the reader leaves (a follower waiting at the log's end, or one done)
        await until(() => (jobFds() === running ? true : undefined), `the agent's fds back to ${running}`);
      }
      const far = await lane({ from: 1_000_000, follow: true }); // waits past the end, then left
      far.socket.destroy();
      await until(() => (jobFds() === running ? true : undefined), `the agent's fds back to ${running}`);
    } finally {
      await core.dispose();
      await hangar(['cancel', id]);
    }
    await until(() => (jobFds() === 0 ? true : undefined), "the agent's fds of the job all closed");
  }, 60_000);

  it('a lane gets only what job.logs would: a job and attempt that exist, from within a final log', async () => {
    const id = await randomLog('head -c 1000 /dev/urandom | tee out/log.bin');
    await ended(id);
    const core = await HangarCore.open({ home: box.home, logger: pino({ level: 'silent' }) });
    try {
      const lane = (hello: { id: string; attempt?: number; from: number }) =>
        openLane(core.connection('local'), { purpose: 'log', follow: true, ...hello });
      for (const [hello, code] of [
        [{ id: 'j-0000000000000000', from: 0 }, 'E_JOB_NOT_FOUND'],
        [{ id, attempt: 2, from: 0 }, 'E_NOT_FOUND'],
        [{ id, from: 1001 }, 'E_BAD_REQUEST'],
      ] as const) {
        await expect(lane(hello)).rejects.toMatchObject({ code, details: { lane: 'refused' } });
      }
      const taken = await lane({ id, from: 0 });
      expect(taken.accept).toEqual({ attempt: 1 });
      taken.socket.destroy();
    } finally {
      await core.dispose();
    }
  }, 60_000);
});

describe('a followed log whose job is still queued', () => {
  // One job at a time: the second waits in the queue behind the first.
  const box = usePairedHost({
    viaProxy: true,
    name: 'local',
    workspace: { 'hello.txt': 'hi\n' },
    agent: { logLevel: 'info', extraArgs: ['--max-jobs', '1'] },
  });
  const hangar = (args: string[]): Promise<CliResult> =>
    hangarFrom(box.home, args, { cwd: box.workspace, timeoutMs: 60_000 });
  const detached = async (script: string, artifacts: string[] = []): Promise<string> => {
    const result = await hangar([
      'run',
      '--detach',
      '--executor',
      'shell',
      '-c',
      script,
      ...artifacts.flatMap((path) => ['--artifacts', path]),
    ]);
    expect(result.code).toBe(0);
    return /(j-[a-z0-9]+)/.exec(result.stdout + result.stderr)![1]!;
  };
  const show = async (id: string) =>
    JSON.parse((await hangar(['jobs', 'show', id, '--json'])).stdout) as {
      state: string;
      artifacts: { sha256: string; size: number }[];
    };

  it('comes on a lane once the job runs (the agent refuses a lane before its log exists), not all on the link', async () => {
    await detached('sleep 3');
    const id = await detached('mkdir -p out && head -c 4000000 /dev/urandom | tee out/log.bin', ['out/log.bin']);
    expect((await show(id)).state).toBe('queued');
    const { code, stdout } = await hangarBytesIn(box, ['logs', id, '--follow']).done;
    expect(code).toBe(0);
    const artifact = (await show(id)).artifacts[0]!;
    expect(createHash('sha256').update(stdout.subarray(0, artifact.size)).digest('hex')).toBe(artifact.sha256);
    // The agent refused a lane while the job was queued, then sent the whole log on one.
    expect(box.agent.stderr()).toMatch(
      new RegExp(`"job":"${id}","attempt":1,"from":0,"follow":true,"msg":"log sent on a lane"`),
    );
    expect(box.agent.stderr()).toMatch(/"how":"eof","bytes":4000000,"msg":"log lane ended"/);
  }, 60_000);

  it('a job cancelled while queued ends its follower with the cancelled status: no lane, no hang', async () => {
    const blocker = await detached('sleep 30');
    const id = await detached('echo never');
    expect((await show(id)).state).toBe('queued');
    const following = hangarBytesIn(box, ['logs', id, '--follow']);
    expect((await hangar(['cancel', id])).code).toBe(0);
    const { code, stdout, stderr } = await following.done;
    expect({ code, stderr }).toEqual({ code: 130, stderr: expect.any(String) });
    expect(stdout.length).toBe(0);
    expect(box.agent.stderr()).not.toMatch(new RegExp(`"job":"${id}".*"msg":"log sent on a lane"`));
    await hangar(['cancel', blocker]);
  }, 60_000);
});
