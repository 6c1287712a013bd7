/**
 * loadNativeLanes() where lane.node cannot be loaded (not built, or a file that is not a library
 * for this machine): it says why and how to fix it, never throws, and answers the same once asked.
 * Each case is a copy of lane/dist beside a build/ of its own.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const LANE = fileURLToPath(new URL('..', import.meta.url));
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * A copy of lane/dist whose ../build/Release/lane.node is `addon` (absent when undefined);
 * `editJs` changes its native.js first.
 */
async function loaderWith(
  addon: Buffer | undefined,
  editJs: (js: string) => string = (js) => js,
): Promise<() => object> {
  const dir = mkdtempSync(join(LANE, '.load-test-')); // inside the repo: dist's imports (zod) resolve
  dirs.push(dir);
  cpSync(join(LANE, 'dist'), join(dir, 'dist'), { recursive: true });
  const nativeJs = join(dir, 'dist', 'native.js');
  writeFileSync(nativeJs, editJs(readFileSync(nativeJs, 'utf8')));
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

  it('a lane.node built from other code than this JavaScript (pulled without npm rebuild): lanes off, with one warning saying to rebuild', async () => {
    // The JavaScript of a newer checkout beside the addon built before it: it expects another version.
    const built = readFileSync(join(LANE, 'build', 'Release', 'lane.node'));
    const load = await loaderWith(built, (js) =>
      js.replace(/const ADDON_VERSION = (\d+);/, (_, n) => `const ADDON_VERSION = ${Number(n) + 1};`),
    );
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const first = load();
      expect(first).toEqual({
        unavailable: expect.stringMatching(/lane\.node was built from other code .*npm rebuild @hangar\/lane/),
      });
      expect(load()).toBe(first);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      expect(warnings.map((w) => w.message)).toEqual([(first as { unavailable: string }).unavailable]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
