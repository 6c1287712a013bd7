import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const exec = promisify(execFile);

/**
 * The size of the young generation (MiB) of a fresh Node process after `setup` runs and a burst
 * of short-lived allocations; the grown default would be 16 MiB per semi-space.
 */
async function youngGenerationMiB(setup: string): Promise<number> {
  const script = `
    ${setup}
    const { getHeapSpaceStatistics } = await import('node:v8');
    let keep = [];
    for (let i = 0; i < 2e6; i++) { keep.push({ i, list: [i] }); if (keep.length > 20000) keep = []; }
    const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    process.stdout.write(String(space.space_size / 1048576));
  `;
  const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd() });
  return Number(stdout);
}

describe("the core's young generation (issue 16)", () => {
  it('stays at its starting size when a process imports it before the core, and grows without it', async () => {
    const [withCore, without] = await Promise.all([
      youngGenerationMiB(
        "await import('@hangar/desktop/core/young-generation'); await import('@hangar/desktop/core');",
      ),
      youngGenerationMiB("await import('@hangar/desktop/core');"),
    ]);
    expect(withCore).toBeGreaterThan(0);
    expect(withCore).toBeLessThanOrEqual(2);
    // The control: loading the core first grows it (16 MiB), and nothing shrinks it again.
    expect(without).toBeGreaterThan(4);
  }, 30_000);
});
