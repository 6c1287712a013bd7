import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { HANGAR_BIN, removeDir, tempDir } from '../support/processes.js';

const run = promisify(execFile);

/**
 * HANGAR_UPGRADE_DELAY_MS (README, "Upgrade in the background"): the wait before each look for a
 * better path. The move itself is tested with it in mesh-upgrade and mesh-udp-blocked; here, what a
 * bad value does: the core does not start, and the error names the variable and what it takes.
 */
const homes: string[] = [];
afterEach(() => {
  for (const home of homes.splice(0)) removeDir(home);
});

async function hostsLs(value: string): Promise<{ code: number; stdout: string; stderr: string; home: string }> {
  const home = tempDir('upgrade-delay');
  homes.push(home);
  try {
    const { stdout, stderr } = await run(process.execPath, [HANGAR_BIN, 'hosts', 'ls'], {
      env: { ...process.env, HANGAR_HOME: home, HANGAR_UPGRADE_DELAY_MS: value },
      timeout: 20_000,
    });
    return { code: 0, stdout, stderr, home };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr, home };
  }
}

describe('HANGAR_UPGRADE_DELAY_MS', () => {
  it.each(['abc', '50', '1.5', '600001', '-1000'])(
    '%s is refused, naming the variable, and the core makes nothing',
    async (value) => {
      const ran = await hostsLs(value);
      expect(ran.code).not.toBe(0);
      expect(ran.stderr).toContain(
        `HANGAR_UPGRADE_DELAY_MS must be a whole number of milliseconds from 100 to 600000 (the wait before each path upgrade attempt), not "${value}"`,
      );
      expect(existsSync(join(ran.home, 'hangar.db'))).toBe(false);
      expect(existsSync(join(ran.home, 'device_ed25519.pem'))).toBe(false);
    },
  );

  it.each(['1000', ''])('"%s" is taken (empty: the default delays)', async (value) => {
    const ran = await hostsLs(value);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toContain('no hosts yet');
  });
});
