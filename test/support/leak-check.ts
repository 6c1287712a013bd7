/**
 * Runs before every test file (vitest.config.ts `setupFiles`) and fails the file if, after its
 * own hooks ran, it left behind:
 * - a process it started (directly or not: a daemonized tmux server, an agent's children), still
 *   running; found by a tag in the environment that every child inherits from this process;
 * - a `hangar-*` tmux server, named with its socket (one of those processes);
 * - a DisposableStore made and never disposed (shared's disposable tracker).
 * Processes get a bounded moment to exit: a kill sent in an afterAll takes a few ms to land.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll } from 'vitest';
// disposable.ts alone, not the whole of @hangar/shared (its schemas took every file ~1.5 s to import
// here, tests that never use them too): the tracker lives on globalThis, so every copy reports to it.
import { setDisposableTracker, type Disposable } from '../../shared/src/disposable.js';

const TAG_NAME = 'HANGAR_TEST_LEAK_TAG';
const tag = `${process.pid}-${randomBytes(6).toString('hex')}`;
process.env[TAG_NAME] = tag;
const tagEntry = `${TAG_NAME}=${tag}`;

/** How long a process may take to exit after the file's last hook (SIGTERM, tmux kill-server). */
const EXIT_GRACE_MS = 5_000;
const POLL_MS = 50;

const stores = new Map<Disposable, string>();
setDisposableTracker({
  created: (store) => stores.set(store, creationSite(new Error().stack)),
  disposed: (store) => stores.delete(store),
});

/** The first frame of the stack outside the tracker and the store itself: who made it. */
function creationSite(stack: string | undefined): string {
  const frames = (stack ?? '').split('\n').slice(1);
  const site = frames.find((line) => !line.includes('leak-check') && !line.includes('disposable.'));
  return site?.trim().replace(/^at /, '') ?? 'an unknown place';
}

interface Leaked {
  pid: number;
  command: string;
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    // Exited while we looked, or another user's process: neither is ours to report.
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'ESRCH') return undefined;
    throw error;
  }
}

/** Running processes (not zombies) whose environment carries this file's tag. */
function taggedProcesses(): Leaked[] {
  const found: Leaked[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const environ = readOrUndefined(`/proc/${pid}/environ`);
    if (environ === undefined || !environ.split('\0').includes(tagEntry)) continue;
    const stat = readOrUndefined(`/proc/${pid}/stat`);
    // The state follows the command name in parentheses, which may itself hold spaces.
    const state = stat?.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (stat === undefined || state === 'Z' || state === 'X') continue;
    const command = (readOrUndefined(`/proc/${pid}/cmdline`) ?? '').split('\0').filter(Boolean).join(' ');
    found.push({ pid, command });
  }
  return found;
}

/** A tmux server's socket: `-L name` under the tmux directory, or `-S path`. */
function tmuxSocket(command: string): string | undefined {
  const args = command.split(' ');
  if (!args[0]?.endsWith('tmux')) return undefined;
  const path = args[args.indexOf('-S') + 1];
  if (args.includes('-S') && path) return path;
  const name = args[args.indexOf('-L') + 1];
  if (!args.includes('-L') || !name) return undefined;
  // tmux's own default is /tmp, not the OS temp directory.
  const dir = process.env.TMUX_TMPDIR || '/tmp';
  return join(dir, `tmux-${process.getuid?.() ?? 0}`, name);
}

function describe(leaked: Leaked): string {
  const socket = tmuxSocket(leaked.command);
  return socket === undefined
    ? `process ${leaked.pid} still running: ${leaked.command}`
    : `tmux server ${leaked.pid} still running with its socket ${socket}: ${leaked.command}`;
}

async function leakedProcesses(): Promise<Leaked[]> {
  const deadline = Date.now() + EXIT_GRACE_MS;
  for (;;) {
    const leaked = taggedProcesses();
    if (leaked.length === 0 || Date.now() >= deadline) return leaked;
    await new Promise<void>((resolve) => setTimeout(resolve, POLL_MS));
  }
}

afterAll(async () => {
  const problems: string[] = [];
  for (const leaked of await leakedProcesses()) {
    problems.push(describe(leaked));
    // Ended here so one leak does not pile up over a run; the file still fails for it.
    try {
      process.kill(leaked.pid, 'SIGKILL');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }
  for (const site of stores.values()) problems.push(`DisposableStore never disposed, made at ${site}`);
  stores.clear();
  if (problems.length > 0) {
    throw new Error(`the test file leaked what it started:\n- ${problems.join('\n- ')}`);
  }
});
