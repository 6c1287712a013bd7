import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startSshd } from '../bench/support.mjs';

/** Whether a process with this pid runs (a zombie of ours counts as gone). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

// The benches' throwaway sshd runs as root (startSshd says "not measured" otherwise).
describe.skipIf(process.getuid?.() !== 0)('the benches throwaway sshd (test/bench/support.mjs)', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  /** A stand-in sshd that writes its pid beside it, then runs `then` (a shell line). */
  function standIn(then: string): { dir: string; sshd: string; pid: () => number } {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-test-sshd-'));
    dirs.push(dir);
    const sshd = join(dir, 'sshd');
    writeFileSync(sshd, `#!/bin/sh\necho $$ > ${join(dir, 'pid')}\n${then}\n`);
    chmodSync(sshd, 0o755);
    return { dir, sshd, pid: () => Number(readFileSync(join(dir, 'pid'), 'utf8')) };
  }

  it('an sshd that never listens is stopped, not left running', async () => {
    const { dir, sshd, pid } = standIn('exec sleep 60');
    await expect(startSshd(dir, { sshd })).rejects.toThrow(/did not listen/);
    expect(running(pid())).toBe(false);
  });

  it('an sshd that exits at once is reported with what it said', async () => {
    const { dir, sshd } = standIn('echo "Bind to port 1 on 127.0.0.1 failed" >&2; exit 255');
    await expect(startSshd(dir, { sshd })).rejects.toThrow(/sshd exited \(255\) before it listened: Bind to port/);
  });
});
