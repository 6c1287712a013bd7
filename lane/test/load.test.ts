/**
 * loadNativeLanes() where lane.node cannot be loaded (not built, or a file that is not a library
 * for this machine): it says why and how to fix it, never throws, and answers the same once asked.
 * Each case is a copy of lane/dist beside a build/ of its own.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const LANE = fileURLToPath(new URL('..', import.meta.url));
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A copy of lane/dist whose ../build/Release/lane.node is `addon` (absent when undefined). */
async function loaderWith(addon: Buffer | undefined): Promise<() => object> {
  const dir = mkdtempSync(join(LANE, '.load-test-')); // inside the repo: dist's imports (zod) resolve
  dirs.push(dir);
  cpSync(join(LANE, 'dist'), join(dir, 'dist'), { recursive: true });
  if (addon) {
    mkdirSync(join(dir, 'build', 'Release'), { recursive: true });
    writeFileSync(join(dir, 'build', 'Release', 'lane.node'), addon);
  }
  const module = (await import(pathToFileURL(join(dir, 'dist', 'index.js')).href)) as {
    loadNativeLanes: () => object;
  };
  return module.loadNativeLanes;
}

describe('loadNativeLanes where lane.node cannot load', () => {
  it('not built: says so and how to build it, never throws, the same answer each time', async () => {
    const load = await loaderWith(undefined);
    const first = load();
    expect(first).toEqual({
      unavailable: expect.stringMatching(/^lane\.node did not load \(.*Cannot find module.*\); build it with/),
    });
    expect(load()).toBe(first);
  });

  it('a file that is not a library for this machine: names the loader error', async () => {
    const load = await loaderWith(Buffer.from('\x7fELF not really a shared object'));
    expect(load()).toEqual({
      unavailable: expect.stringMatching(/^lane\.node did not load \(.*(invalid ELF header|too short)/),
    });
  });
});
