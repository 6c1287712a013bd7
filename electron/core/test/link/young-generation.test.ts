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

/**
 * A process that loads the core (its young generation grown by module loading) and then idles
 * until V8's memory reducer shrinks the young generation: its size (MiB) after a burst of
 * allocations. `after` runs once the core is loaded.
 */
async function afterQuietMiB(after: string): Promise<number> {
  const script = `
    const { getHeapSpaceStatistics } = await import('node:v8');
    const size = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 1048576;
    await import('@hangar/desktop/core');
    ${after}
    const began = Date.now();
    while (size() > 2) {
      if (Date.now() - began > 60000) throw new Error('the young generation never shrank');
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    let keep = [];
    for (let i = 0; i < 2e6; i++) { keep.push({ i, list: [i] }); if (keep.length > 20000) keep = []; }
    process.stdout.write(String(size()));
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

  it('in a process that loaded the core first, stays small once the memory reducer has shrunk it', async () => {
    const [held, control] = await Promise.all([
      afterQuietMiB(''),
      // The control: the default growth factor back, the same allocations grow it again.
      afterQuietMiB("(await import('node:v8')).setFlagsFromString('--semi-space-growth-factor=2');"),
    ]);
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(2);
    expect(control).toBeGreaterThan(4);
  }, 90_000);
});
