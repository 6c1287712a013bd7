/**
 * lane/package.json's install step (what `npm ci` and `npm rebuild @hangar/lane` run) on a machine
 * where the addon cannot be compiled: the install goes on with a warning that says what failed,
 * what is lost and how to fix it, and the package then reports no addon the way the agent and the
 * core expect (`loadNativeLanes()` answers `{ unavailable }`). HANGAR_REQUIRE_LANES=1 makes the
 * failure fatal (CI). Each case runs `npm run install` in a scratch copy of lane/ in a temp dir,
 * with a C and C++ compiler that always fail (`false`), so nothing here touches lane/build.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const LANE = fileURLToPath(new URL('..', import.meta.url));
const ROOT = join(LANE, '..');
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** lane/ without its build, tests or node_modules; dist's imports (zod) resolve through a link to the repo's. */
function scratchLane(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-lane-install-'));
  dirs.push(dir);
  const skip = new Set(['build', 'test', 'node_modules']);
  cpSync(LANE, dir, { recursive: true, filter: (source) => !skip.has(relative(LANE, source).split('/')[0]!) });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

function install(dir: string, env: Record<string, string> = {}) {
  const base = { ...process.env };
  delete base.HANGAR_REQUIRE_LANES;
  return spawnSync('npm', ['run', 'install'], {
    cwd: dir,
    env: { ...base, CC: 'false', CXX: 'false', ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
}

describe("lane's install step where the addon does not compile", () => {
  it('warns (what failed, what is lost, how to fix), exits 0, and the package loads without the addon', () => {
    const dir = scratchLane();
    const run = install(dir);
    expect(run.error).toBeUndefined();
    const output = run.stdout + run.stderr;
    expect(run.status, output).toBe(0);
    expect(run.stderr).toMatch(
      /@hangar\/lane: the native relay of lanes \(lane\.node\) did not build: node-gyp rebuild exited with \d+/,
    );
    expect(run.stderr).toMatch(/lanes are off/);
    expect(run.stderr).toMatch(/previews, terminals, artifact downloads and logs/);
    expect(run.stderr).toMatch(/C\/C\+\+ compiler/);
    expect(run.stderr).toMatch(/npm rebuild @hangar\/lane/);
    expect(run.stderr).toMatch(/HANGAR_REQUIRE_LANES=1/);
    expect(existsSync(join(dir, 'build', 'Release', 'lane.node'))).toBe(false);

    const load = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "const m = await import('./dist/index.js'); console.log(JSON.stringify(m.loadNativeLanes()))",
      ],
      { cwd: dir, encoding: 'utf8', timeout: 30_000 },
    );
    expect(load.status, load.stderr).toBe(0);
    expect(JSON.parse(load.stdout)).toEqual({ unavailable: expect.stringMatching(/^lane\.node did not load \(/) });
  });

  it('fails the install with HANGAR_REQUIRE_LANES=1, saying why', () => {
    const dir = scratchLane();
    const run = install(dir, { HANGAR_REQUIRE_LANES: '1' });
    expect(run.error).toBeUndefined();
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/did not build: node-gyp rebuild exited with \d+/);
    expect(run.stderr).toMatch(/HANGAR_REQUIRE_LANES=1 makes this fatal/);
  });

  it('a stale lane.node from an earlier build is removed when node-gyp cannot even start (lanes are off, as it says)', () => {
    const dir = scratchLane();
    mkdirSync(join(dir, 'build', 'Release'), { recursive: true });
    // An earlier build's addon: were it left, the new JS would load an old binary.
    cpSync(join(LANE, 'build', 'Release', 'lane.node'), join(dir, 'build', 'Release', 'lane.node'));
    // The install step as npm runs it, with no node-gyp on PATH (only node).
    const base = { ...process.env };
    delete base.HANGAR_REQUIRE_LANES;
    const run = spawnSync(process.execPath, ['install.mjs'], {
      cwd: dir,
      env: { ...base, PATH: dirname(process.execPath) },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status, run.stdout + run.stderr).toBe(0);
    expect(run.stderr).toMatch(/did not build: node-gyp could not run/);
    expect(run.stderr).toMatch(/lanes are off/);
    expect(existsSync(join(dir, 'build', 'Release', 'lane.node'))).toBe(false);
  });
});

/**
 * npm hides the output of a dependency's (and a workspace's) install step unless it fails, so the
 * warning above would never be seen under `npm ci`: the root's postinstall (which npm shows) repeats
 * it. A scratch workspace root with the repo's postinstall and a scratch lane/ (no dependencies, so
 * `npm install --offline` needs nothing from the registry).
 */
describe('the warning under npm install of the workspace', () => {
  function scratchRoot(): string {
    const root = mkdtempSync(join(tmpdir(), 'hangar-lane-ws-'));
    dirs.push(root);
    const skip = new Set(['build', 'test', 'node_modules']);
    cpSync(LANE, join(root, 'lane'), {
      recursive: true,
      filter: (source) => !skip.has(relative(LANE, source).split('/')[0]!),
    });
    const lanePackage = JSON.parse(readFileSync(join(root, 'lane', 'package.json'), 'utf8')) as Record<string, unknown>;
    delete lanePackage.dependencies;
    writeFileSync(join(root, 'lane', 'package.json'), JSON.stringify(lanePackage));
    const rootPackage = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    writeFileSync(
      join(root, 'package.json'),
      JSON.stringify({
        name: 'scratch',
        private: true,
        workspaces: ['lane'],
        scripts: { postinstall: rootPackage.scripts.postinstall },
      }),
    );
    return root;
  }

  function npmInstall(root: string, env: Record<string, string> = {}) {
    const base = { ...process.env };
    delete base.HANGAR_REQUIRE_LANES;
    return spawnSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--no-package-lock'], {
      cwd: root,
      env: { ...base, CC: 'false', CXX: 'false', npm_config_nodedir: '/usr', ...env },
      encoding: 'utf8',
      timeout: 120_000,
    });
  }

  it('a failed build: npm install succeeds and shows what failed, that lanes are off and how to fix it', () => {
    const root = scratchRoot();
    const run = npmInstall(root);
    const output = run.stdout + run.stderr;
    expect(run.status, output).toBe(0);
    expect(output).toMatch(/@hangar\/lane: the native relay of lanes \(lane\.node\) did not build/);
    expect(output).toMatch(/lanes are off/);
    expect(output).toMatch(/npm rebuild @hangar\/lane --foreground-scripts/);
  });

  it('HANGAR_REQUIRE_LANES=1: npm install fails, and says why', () => {
    const root = scratchRoot();
    const run = npmInstall(root, { HANGAR_REQUIRE_LANES: '1' });
    expect(run.status).not.toBe(0);
    expect(run.stdout + run.stderr).toMatch(/HANGAR_REQUIRE_LANES=1 makes this fatal/);
  });
});
