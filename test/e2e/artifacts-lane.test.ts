import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { HangarCore, openLane } from '@hangar/desktop/core';
import { usePairedHost } from '../support/paired-host.js';
import { hangarFrom, type CliResult } from '../support/processes.js';
import { until } from '../support/until.js';

/**
 * `hangar artifacts` (and `hangar run`'s download) on a lane (lane/PROTOCOL.md, "Purposes:
 * artifact"): the agent's native relay reads the file, the core's writes the partial file; the
 * link asks, checks and ends. The agent logs each artifact lane, so a download on the mux fails
 * the tests that expect a lane. Through a TcpProxy that can stall, cut and refuse lanes alone.
 */
describe('artifacts over a lane', () => {
  const box = usePairedHost({
    viaProxy: true,
    name: 'local',
    workspace: { 'hello.txt': 'hi\n' },
    agent: { logLevel: 'info' },
  });
  const hangar = (args: string[], env: Record<string, string> = {}): Promise<CliResult> =>
    hangarFrom(box.home, args, { cwd: box.workspace, timeoutMs: 60_000, env });

  /** A job that leaves `bytes` random bytes in out/big.bin; its id and the artifact's record. */
  async function bigArtifact(bytes: number) {
    const result = await hangar([
      'run',
      '--executor',
      'shell',
      '-c',
      `mkdir -p out && head -c ${bytes} /dev/urandom > out/big.bin`,
      '--artifacts',
      'out/big.bin',
    ]);
    expect(result.code).toBe(0);
    const id = /job (j-[a-z0-9]+)/.exec(result.stderr)![1]!;
    const shown = JSON.parse((await hangar(['jobs', 'show', id, '--json'])).stdout) as {
      artifacts: { path: string; sha256: string; size: number }[];
    };
    return { id, artifact: shown.artifacts[0]! };
  }

  const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
  const lanesSent = () => box.agent.stderr().split('artifact sent on a lane').length - 1;

  it('a run downloads its artifact on a lane, byte for byte, and so does hangar artifacts', async () => {
    const { id, artifact } = await bigArtifact(20_000_000);
    expect(lanesSent()).toBe(1);
    const landed = readFileSync(join(box.workspace, 'hangar-artifacts', id, 'out', 'big.bin'));
    expect(landed.length).toBe(20_000_000);
    expect(sha256(landed)).toBe(artifact.sha256);
    const again = await hangar(['artifacts', id, '--out', 'again']);
    expect(again.code).toBe(0);
    expect(lanesSent()).toBe(2);
    expect(sha256(readFileSync(join(box.workspace, 'again', 'out', 'big.bin')))).toBe(artifact.sha256);
    expect(box.agent.stderr()).toMatch(/"how":"eof","bytes":20000000,"msg":"artifact lane ended"/);
  }, 90_000);

  it('a lane cut mid-download resumes from the bytes written: nothing lost or doubled', async () => {
    const { id, artifact } = await bigArtifact(8_000_000);
    // The next lane carries 3 MB, then nothing: ACCEPT (under 4 KiB) and 45 whole DATA records of
    // 64 KiB (65,557 bytes sealed), and part of the 46th, which is never written. Cut there.
    box.proxy!.stallWhere('HGLANE/1', 3_000_000);
    const had = 45 * 65_536;
    const download = hangar(['artifacts', id, '--out', 'cut']);
    const partials = join(box.workspace, 'cut', 'out');
    // The download's own partial file (its name has a random part).
    const size = () => {
      const name = existsSync(partials)
        ? readdirSync(partials).find((n) => n.startsWith('.big.bin.') && n.endsWith('.hangar-partial'))
        : undefined;
      return name === undefined ? 0 : readFileSync(join(partials, name)).length;
    };
    await until(() => (box.proxy!.stalledBytes > 0 && size() === had ? true : undefined), 'the lane to stall');
    box.proxy!.stallWhere(undefined);
    expect(box.proxy!.cutWhere('HGLANE/1')).toBe(1);
    const result = await download;
    expect(result.code).toBe(0);
    const landed = readFileSync(join(box.workspace, 'cut', 'out', 'big.bin'));
    expect(landed.length).toBe(artifact.size);
    expect(sha256(landed)).toBe(artifact.sha256);
    // The second lane started where the first left the file.
    const froms = [...box.agent.stderr().matchAll(/"from":(\d+),"msg":"artifact sent on a lane"/g)].map((m) =>
      Number(m[1]),
    );
    expect(froms.slice(-2)).toEqual([0, had]);
    expect(readdirSync(join(box.workspace, 'cut', 'out'))).toEqual(['big.bin']);
  }, 90_000);

  it('falls back to the link when lanes are off or the lane port refuses them', async () => {
    const { id, artifact } = await bigArtifact(3_000_000);
    const before = lanesSent();
    const off = await hangar(['artifacts', id, '--out', 'off'], { HANGAR_LANES: 'off' });
    expect(off.code).toBe(0);
    expect(sha256(readFileSync(join(box.workspace, 'off', 'out', 'big.bin')))).toBe(artifact.sha256);
    box.proxy!.refuseWhere('HGLANE/1');
    const refused = await hangar(['artifacts', id, '--out', 'refused']);
    box.proxy!.refuseWhere(undefined);
    expect(refused.code).toBe(0);
    expect(sha256(readFileSync(join(box.workspace, 'refused', 'out', 'big.bin')))).toBe(artifact.sha256);
    expect(lanesSent()).toBe(before);
  }, 90_000);

  it('a lane gets only what artifact.fetch would: a recorded artifact of a job, never a path as given', async () => {
    const { id, artifact } = await bigArtifact(1000);
    const core = await HangarCore.open({ home: box.home, logger: pino({ level: 'silent' }) });
    try {
      const lane = (hello: { id: string; path: string; from: number }) =>
        openLane(core.connection('local'), { purpose: 'artifact', ...hello });
      const other = 'j-0000000000000000';
      for (const [hello, code] of [
        [{ id, path: '../output.log', from: 0 }, 'E_NOT_FOUND'],
        [{ id, path: 'out/../out/big.bin', from: 0 }, 'E_NOT_FOUND'],
        [{ id, path: '/etc/passwd', from: 0 }, 'E_NOT_FOUND'],
        [{ id: other, path: 'out/big.bin', from: 0 }, 'E_JOB_NOT_FOUND'],
        [{ id, path: 'out/big.bin', from: 1001 }, 'E_BAD_REQUEST'],
      ] as const) {
        await expect(lane(hello)).rejects.toMatchObject({ code, details: { lane: 'refused' } });
      }
      // The recorded one is taken (ACCEPT has its recorded size and sha256).
      const taken = await lane({ id, path: 'out/big.bin', from: 0 });
      expect(taken.accept).toEqual({ size: artifact.size, sha256: artifact.sha256 });
      taken.socket.destroy();
    } finally {
      await core.dispose();
    }
    expect(existsSync(join(box.workspace, 'hangar-artifacts', id, 'out', 'big.bin'))).toBe(true);
  }, 60_000);

  it('an artifact swapped on disk after collection (a symlink to a secret or in its folders, a FIFO, another size) is refused before a byte is sent', async () => {
    const { id } = await bigArtifact(1000);
    // The agent's copy, collected at the job's end into its own data dir (jobs/<id>/<attempt>/artifacts).
    const copy = join(box.dataDir, 'jobs', id, '1', 'artifacts', 'out', 'big.bin');
    expect(existsSync(copy)).toBe(true);
    const secret = join(box.dataDir, 'not-an-artifact');
    writeFileSync(secret, 'secret\n'.repeat(1000));
    /** The agent's fds on files under its jobs dir (each lane's file is closed once it ends or is refused). */
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
    const core = await HangarCore.open({ home: box.home, logger: pino({ level: 'silent' }) });
    try {
      const lane = () => openLane(core.connection('local'), { purpose: 'artifact', id, path: 'out/big.bin', from: 0 });
      const before = lanesSent();
      const outDir = join(box.dataDir, 'jobs', id, '1', 'artifacts', 'out');
      const elsewhere = join(box.dataDir, 'elsewhere');
      const swaps = [
        () => symlinkSync(secret, copy),
        () => execFileSync('mkfifo', [copy]),
        () => writeFileSync(copy, Buffer.alloc(1001)), // another size than recorded
        () => {
          // A folder of its path a symlink, to a folder with a file of that name and size.
          rmSync(outDir, { recursive: true });
          mkdirSync(elsewhere);
          writeFileSync(join(elsewhere, 'big.bin'), Buffer.alloc(1000));
          symlinkSync(elsewhere, outDir);
        },
      ];
      for (const swap of swaps) {
        rmSync(copy, { force: true });
        swap();
        await expect(lane()).rejects.toMatchObject({ code: 'E_ARTIFACT_UNSAFE', details: { lane: 'refused' } });
        const fetched = await hangar(['artifacts', id, '--out', 'swapped']);
        expect(fetched.code).not.toBe(0);
        expect(fetched.stderr).toMatch(/out\/big\.bin.*not the regular file the agent collected/);
        expect(existsSync(join(box.workspace, 'swapped', 'out', 'big.bin'))).toBe(false);
      }
      expect(lanesSent()).toBe(before);
    } finally {
      await core.dispose();
    }
    expect(jobFds()).toBe(0);
  }, 60_000);

  it('the core and the agent keep no fd of a download on a lane: done, cut, refused, damaged', async () => {
    const { id, artifact } = await bigArtifact(4_000_000);
    const copy = join(box.dataDir, 'jobs', id, '1', 'artifacts', 'out', 'big.bin');
    const original = readFileSync(copy);
    /** Sockets and files under `under` that process `pid` holds. */
    const fds = (pid: number | 'self', under: string) => {
      const dir = `/proc/${pid}/fd`;
      return readdirSync(dir).filter((fd) => {
        try {
          const target = readlinkSync(join(dir, fd));
          return target.startsWith('socket:') || target.startsWith(under);
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    };
    const outs = join(box.workspace, 'fds');
    const core = await HangarCore.open({ home: box.home, logger: pino({ level: 'silent' }) });
    try {
      let n = 0;
      const download = () => core.jobs.downloadArtifacts('local', id, join(outs, String(n++)));
      // The link is up (and its sockets counted) after a first download.
      await download();
      const coreHeld = fds('self', outs);
      const agentHeld = fds(box.agent.child.pid!, join(box.dataDir, 'jobs'));
      const before = lanesSent();
      // Cut mid-lane: resumes on a second lane.
      box.proxy!.stallWhere('HGLANE/1', 1_000_000);
      const cut = download();
      await until(() => (box.proxy!.stalledBytes > 0 ? true : undefined), 'the lane to stall');
      box.proxy!.stallWhere(undefined);
      expect(box.proxy!.cutWhere('HGLANE/1')).toBe(1);
      await cut;
      expect(lanesSent()).toBe(before + 2);
      // The host's copy changed (same size): arrives damaged, on a lane.
      const damaged = Buffer.from(original);
      damaged[10]! ^= 1;
      writeFileSync(copy, damaged);
      await expect(download()).rejects.toMatchObject({ code: 'E_PROTOCOL' });
      expect(lanesSent()).toBe(before + 3);
      // Refused: a symlink in its place.
      rmSync(copy);
      symlinkSync(join(box.dataDir, 'jobs', id, '1', 'log'), copy);
      await expect(download()).rejects.toMatchObject({ code: 'E_ARTIFACT_UNSAFE' });
      rmSync(copy);
      writeFileSync(copy, original);
      await download();
      expect(lanesSent()).toBe(before + 4);
      // At most as many as after the first download: none kept (the agent may hold fewer by then:
      // a connection of an earlier test that ended meanwhile; CI saw 7, then 5).
      await until(
        () =>
          fds('self', outs) <= coreHeld && fds(box.agent.child.pid!, join(box.dataDir, 'jobs')) <= agentHeld
            ? true
            : undefined,
        `the core's fds back to at most ${coreHeld} (${fds('self', outs)}) and the agent's to at most ${agentHeld} (${fds(box.agent.child.pid!, join(box.dataDir, 'jobs'))})`,
      );
    } finally {
      await core.dispose();
    }
  }, 90_000);
});
