import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { HANGAR_BIN, endAgent, hangar, pairWith, removeDir, startAgentProcess, tempDir } from '../support/processes.js';
import { startServingCli } from '../support/serving-cli.js';
import { useCleanups } from '../support/cleanups.js';

const run = promisify(execFile);
const UI_ADDRESS = /Hangar UI at (\S+)/;
const MOVED = "the log moved onto this command's own link to box";

/**
 * Issue 16: with the app running, `hangar logs --follow` of a log that comes fast starts through
 * the running core's door, then moves onto a link of its own to the host, from the next byte it
 * has not written, so the log's bytes no longer cross the core.
 */
describe('hangar logs --follow with the app running', () => {
  const cleanups = useCleanups();

  async function appWithHost(): Promise<string> {
    const home = tempDir('logs-move');
    cleanups.push(() => removeDir(home));
    const dataDir = tempDir('logs-move-agent');
    const agent = await startAgentProcess(dataDir);
    cleanups.push(() => endAgent(agent, dataDir));
    const ui = await startServingCli(home, ['ui'], UI_ADDRESS);
    cleanups.push(() => ui.stop());
    await pairWith(home, 'box', agent);
    return home;
  }

  /** `hangar logs <id> --host box --follow` into a pipe whose reader pauses now and then. */
  async function follow(home: string, id: string, env: Record<string, string> = {}) {
    const follower = spawn(process.execPath, [HANGAR_BIN, 'logs', id, '--host', 'box', '--follow'], {
      env: { ...process.env, HANGAR_HOME: home, HANGAR_DEBUG: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => void (follower.exitCode === null && follower.kill('SIGKILL')));
    const chunks: Buffer[] = [];
    let received = 0;
    let nextPause = 2_000_000;
    follower.stdout.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= nextPause) {
        nextPause += 5_000_000;
        follower.stdout.pause();
        setTimeout(() => follower.stdout.resume(), 100);
      }
    });
    let stderr = '';
    follower.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => follower.once('close', resolve));
    return { code, stderr, stdout: Buffer.concat(chunks) };
  }

  it('a fast log moves onto its own link while it is being written: byte for byte, nothing lost or doubled, with the job’s exit status', async () => {
    const home = await appWithHost();
    // 16 MB that do not compress, at once (the door carries 4 MiB within a second: the move starts),
    // then numbered lines written over ~3 s, while the move happens and after; the job exits 3.
    const random = `openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 0 -in /dev/zero 2>/dev/null | head -c 16000000`;
    const lines = 'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo "line $i"; [ $((i % 100)) = 0 ] && sleep 0.1; done';
    const expected = Buffer.concat([
      (await run('sh', ['-c', random], { encoding: 'buffer', maxBuffer: 64e6 })).stdout,
      Buffer.from(Array.from({ length: 3000 }, (_, i) => `line ${i + 1}\n`).join('')),
    ]);
    const ran = await hangar(home, [
      'run',
      '--host',
      'box',
      '--no-workspace',
      '--detach',
      '-c',
      `${random}; ${lines}; exit 3`,
    ]);
    expect(ran.code, ran.stderr).toBe(0);
    const id = ran.stdout.trim();
    const moved = await follow(home, id);
    expect(moved.stderr).toContain('same protocol tables');
    expect(moved.stderr).toContain(MOVED);
    expect(moved.code, moved.stderr).toBe(3);
    expect(moved.stdout.length).toBe(expected.length);
    expect(moved.stdout.equals(expected)).toBe(true);
    // Once more, the job ended (its whole log there at once): the same bytes either way.
    const again = await follow(home, id);
    expect(again.code, again.stderr).toBe(3);
    expect(again.stdout.equals(expected)).toBe(true);
    // HANGAR_LOGS_HANDOVER=off: the log stays on the running core's door.
    const stayed = await follow(home, id, { HANGAR_LOGS_HANDOVER: 'off' });
    expect(stayed.stderr).not.toContain(MOVED);
    expect(stayed.code, stayed.stderr).toBe(3);
    expect(stayed.stdout.equals(expected)).toBe(true);
  }, 120_000);

  it('a short log stays on the running core', async () => {
    const home = await appWithHost();
    const ran = await hangar(home, ['run', '--host', 'box', '--no-workspace', '--detach', '-c', 'seq 1 20000']);
    const id = ran.stdout.trim();
    const followed = await follow(home, id);
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stderr).toContain('same protocol tables');
    expect(followed.stderr).not.toContain('moving the log');
    expect(followed.stdout.toString()).toBe(Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join(''));
  }, 60_000);
});
