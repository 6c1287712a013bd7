import { execFile } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tmuxSocketNameOf } from '@hangar/shared';
import { stop as stopEsbuild } from 'esbuild';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { killEverything } from '../fixtures/service-manager/jobs.mjs';
import { betterSqlitePrebuild, startRegistry } from '../fixtures/npm-registry/registry.mjs';
import { installEnv, ROOT } from './agent-releases.mjs';
import { tempDir } from './processes.js';

const exec = promisify(execFile);

export interface InstallWork {
  /** A loopback npm registry (with better-sqlite3's prebuild) that installs and updates fetch from. */
  registry: Awaited<ReturnType<typeof startRegistry>>;
  /** The file's work dir: sandboxes, packed and published agents. */
  work: string;
}

/**
 * For an installer test file: the registry and work dir, made before the file's own beforeAll
 * runs and gone after its afterAll, with esbuild's service process ended (packing the agent
 * starts it; the leak check fails a file that leaves it).
 */
export function useInstallWork(name: string): InstallWork {
  const made = {} as InstallWork;
  beforeAll(async () => {
    made.registry = await startRegistry({ prebuilds: betterSqlitePrebuild(ROOT) });
    made.work = tempDir(name);
  }, 60_000);
  afterAll(async () => {
    await stopEsbuild();
    await made.registry?.[Symbol.asyncDispose]();
    if (made.work) rmSync(made.work, { recursive: true, force: true });
  });
  return made;
}

/** One install's own home and root (the stand-ins' state beside them), under the file's work dir. */
export interface Sandbox {
  dir: string;
  home: string;
  root: string;
  state: string;
  env: NodeJS.ProcessEnv;
}

/**
 * A maker of sandboxes for the installer tests; after each test, what each one ran is ended: the
 * service manager stand-in's services and the agents' tmux servers (user and system data dir).
 * `context` gives the file's loopback npm registry and work dir (made in its beforeAll).
 */
export function useInstallSandboxes(
  context: () => { registry: unknown; work: string },
): (extra?: NodeJS.ProcessEnv) => Sandbox {
  const sandboxes: Sandbox[] = [];
  afterEach(async () => {
    for (const box of sandboxes.splice(0)) {
      await killEverything(box.state);
      for (const data of [join(box.home, '.hangar-agent'), join(box.root, 'var/lib/hangar')]) {
        // By the path's hash (sessions/tmux.ts), as the data dir may be gone (uninstall --purge).
        const socket = tmuxSocketNameOf(data);
        await exec('tmux', ['-L', socket, 'kill-server']).catch(() => undefined); // none running
        rmSync(join(`/tmp/tmux-${process.getuid!()}`, socket), { force: true }); // a killed server leaves it
      }
    }
  });
  return (extra = {}) => {
    const { registry, work } = context();
    const dir = join(work, `box-${sandboxes.length}-${Date.now()}`);
    const box = { dir, home: join(dir, 'home'), root: join(dir, 'root'), state: join(dir, 'state') };
    // A system install's service user must reach into them.
    mkdirSync(box.home, { recursive: true, mode: 0o755 });
    mkdirSync(box.root, { recursive: true, mode: 0o755 });
    const made = { ...box, env: { ...installEnv({ registry, ...box }), ...extra } };
    sandboxes.push(made);
    return made;
  };
}
