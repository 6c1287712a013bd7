import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { HangarCore } from '../../electron/core/src/index.js';
import { usePairedHost } from '../support/paired-host.js';
import {
  endAgent,
  hangar,
  HANGAR_BIN,
  hangarAgent,
  pairWith,
  removeDir,
  startAgentProcess,
  tempDir,
  type AgentProcess,
  type CliResult,
} from '../support/processes.js';
import { ResticTemplate } from '../support/restic-template.js';
import { until } from '../support/until.js';

/**
 * Backups: restic snapshots of a host's directories, through the hangar command and a real agent
 * running the real restic (its repository in the agent's data directory, a temp dir).
 */

// Each test runs a few dozen hangar commands (a Node start each) and restic runs: minutes under load.

/** What every command printed: the backup key must be in none of it. */
const printed: string[] = [];
async function run(home: string, args: string[], timeoutMs = 60_000): Promise<CliResult> {
  const result = await hangar(home, args, timeoutMs);
  printed.push(result.stdout, result.stderr);
  return result;
}
const dirs: string[] = [];
function project(): string {
  const dir = tempDir('backed-up');
  dirs.push(dir);
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'README'), 'hello\n');
  writeFileSync(join(dir, 'src', 'main.c'), 'int main(void) { return 0; }\n');
  writeFileSync(join(dir, 'blob.bin'), Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 251)));
  return dir;
}
function restoreTarget(): string {
  const parent = tempDir('restore');
  dirs.push(parent);
  return join(parent, 'here');
}
afterEach(() => {
  for (const dir of dirs.splice(0)) removeDir(dir);
});

/**
 * An empty repository with its password, copied into the data directory of the agents whose tests
 * are about something else than the agent making them (see ResticTemplate: made once, its key cheap
 * to derive). "backups on demand" and "the backup key" start with none: the agent makes both.
 */
const template = new ResticTemplate();
afterAll(() => template.dispose());
const seedRepository = (dataDir: string) => template.seed(dataDir);

describe('backups on demand', () => {
  const box = usePairedHost();

  it('a backup shows in the list, restores byte for byte into a new directory, and a change makes a second snapshot', async () => {
    const dir = project();
    expect((await run(box.home, ['backup', 'set', 'box', '--path', dir])).code).toBe(0);
    const first = await run(box.home, ['backup', 'now', 'box']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('backing up box');
    const snapshot = /^snapshot ([0-9a-f]{8,}): 3 files, /m.exec(first.stdout)?.[1];
    expect(snapshot, first.stdout).toBeDefined();

    const listed = await run(box.home, ['backup', 'ls', 'box', '--json']);
    const snapshots = JSON.parse(listed.stdout) as { id: string; short_id: string; paths: string[] }[];
    expect(snapshots).toHaveLength(1);
    expect(snapshots[0]!.id.startsWith(snapshot!)).toBe(true);
    expect(snapshots[0]!.paths).toEqual([dir]);

    const to = restoreTarget();
    const restored = await run(box.home, ['backup', 'restore', 'box', snapshot!, '--to', to]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toContain(`restored ${snapshot} into ${to}: 3 files`);
    for (const file of ['README', 'src/main.c', 'blob.bin']) {
      expect(readFileSync(join(to, dir, file))).toEqual(readFileSync(join(dir, file)));
    }

    writeFileSync(join(dir, 'README'), 'hello again\n');
    const second = await run(box.home, ['backup', 'now', 'box', '--json']);
    expect(second.code, second.stderr).toBe(0);
    const run2 = JSON.parse(second.stdout) as { state: string; snapshot: string };
    expect(run2.state).toBe('ok');
    expect(run2.snapshot).not.toBe(snapshot);
    expect(JSON.parse((await run(box.home, ['backup', 'ls', 'box', '--json'])).stdout)).toHaveLength(2);

    // The newer snapshot has the change, the older one still the first text.
    const newer = restoreTarget();
    expect((await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', newer])).code).toBe(0);
    expect(readFileSync(join(newer, dir, 'README'), 'utf8')).toBe('hello again\n');
    expect(readFileSync(join(to, dir, 'README'), 'utf8')).toBe('hello\n');

    const status = await run(box.home, ['backup', 'status', 'box', '--json']);
    const parsed = JSON.parse(status.stdout) as { last: { state: string; trigger: string }; next_at: number | null };
    expect(parsed.last).toMatchObject({ state: 'ok', trigger: 'user' });
    expect(parsed.next_at).toBeNull();

    // The key: printed on the host by hangar-agent, in nothing that crossed the link.
    const key = readFileSync(join(box.dataDir, 'backups', 'password'), 'utf8').trim();
    expect(key.length).toBeGreaterThan(20);
    const local = await hangarAgent(['backup', 'key', '--data', box.dataDir]);
    expect(local.stdout.trim()).toBe(key);
    const unlocked = await hangarAgent(['backup', 'unlock', '--data', box.dataDir]);
    expect(unlocked.stdout, unlocked.stderr).toContain(
      `removed stale locks from ${join(box.dataDir, 'backups', 'restic')}`,
    );
    for (const output of printed) expect(output).not.toContain(key);
    expect(box.agent.stderr()).not.toContain(key);

    // The agent's own help names both, so a user who lost the README finds them.
    const help = await hangarAgent(['--help']);
    expect(help.stdout).toMatch(/backup\s+this host's backups: key, unlock/);

    // Another data directory than the agent's (the default ~/.hangar-agent, where npm start's agent
    // is not): both say to name the agent's with --data, and make nothing there (no agent.db, no key).
    const elsewhere = tempDir('not-agent-data');
    dirs.push(elsewhere);
    for (const command of ['key', 'unlock']) {
      const wrong = await hangarAgent(['backup', command, '--data', elsewhere]);
      expect(wrong.code, command).not.toBe(0);
      expect(wrong.stderr).toContain(`no agent data in ${elsewhere}: name the data directory`);
      expect(wrong.stderr).toContain('~/.hangar/agent');
      expect(readdirSync(elsewhere), command).toEqual([]);
    }
  }, 180_000);

  it("refuses to back up the agent's own data directory, and says how to start when nothing is set", async () => {
    const none = await run(box.home, ['backup', 'now', 'box']);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('hangar backup set <host> --path DIR');
    const own = await run(box.home, ['backup', 'set', 'box', '--path', box.dataDir]);
    expect(own.code).not.toBe(0);
    expect(own.stderr).toMatch(/is the agent's own data directory/);
    const missing = await run(box.home, ['backup', 'set', 'box', '--path', '/no/such/dir']);
    expect(missing.stderr).toMatch(/"\/no\/such\/dir" does not exist on this host/);

    // Every backup command's help says what its <host> is, as session and preview commands do.
    for (const command of ['set', 'now', 'ls', 'restore', 'status']) {
      const help = await run(box.home, ['backup', command, '--help']);
      expect(help.stdout, command).toMatch(/Arguments:\n\s+host\s+host name \(see `hangar hosts ls`\)/);
    }
  });
});

// A repository made already (the template's): restic's locks and a key that does not open it are
// about restic's answers, not about the agent making the repository and its key.
describe('backups on demand, against a locked repository or another key', () => {
  const box = usePairedHost({ beforeStart: seedRepository });

  it('says what to do when the repository is locked by another restic, or does not open with the key', async () => {
    const dir = project();
    await run(box.home, ['backup', 'set', 'box', '--path', dir, '--keep-last', '1']);
    expect((await run(box.home, ['backup', 'now', 'box'])).code).toBe(0);
    const repository = join(box.dataDir, 'backups', 'restic');
    const password = join(box.dataDir, 'backups', 'password');
    // A real restic that holds a lock while it reads stdin: the prune after the next backup needs
    // the repository to itself.
    const holder = spawn('/usr/bin/restic', ['backup', '--stdin', '--stdin-filename', 'held'], {
      env: { ...process.env, RESTIC_REPOSITORY: repository, RESTIC_PASSWORD_FILE: password },
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    try {
      await until(() => (readdirSync(join(repository, 'locks')).length > 0 ? true : undefined), 'the lock');
      const locked = await run(box.home, ['backup', 'now', 'box']);
      expect(locked.code, locked.stderr).toBe(0);
      expect(locked.stdout).toMatch(
        /note: the snapshot was made, but the keep policy was not applied: .*is locked by another restic run.*hangar-agent backup unlock/,
      );
      // What to run names this agent's data directory, not the default one.
      expect(locked.stdout).toContain(`hangar-agent backup unlock --data ${box.dataDir}`);
    } finally {
      const exited = new Promise((resolve) => holder.once('exit', resolve));
      holder.kill('SIGKILL');
      await exited;
    }

    writeFileSync(password, 'not the key\n');
    const wrong = await run(box.home, ['backup', 'now', 'box']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/does not open with this host's backup key/);
    expect(wrong.stderr).toContain(`Put that repository's key in ${password} on the host`);
  }, 120_000);
});

// One host for these: each backs up a directory of its own and restores (or is refused) from its
// own latest snapshot; none counts the snapshots or changes the key or the keep policy (those above
// have a host each).
describe('backups on demand, restores and refusals on one host', () => {
  const box = usePairedHost({ shared: true, beforeStart: seedRepository });

  it('a restore refuses a directory that is not empty, a ".." and a symbolic link, and writes nothing', async () => {
    const dir = project();
    await run(box.home, ['backup', 'set', 'box', '--path', dir]);
    expect((await run(box.home, ['backup', 'now', 'box'])).code).toBe(0);

    const full = tempDir('full');
    dirs.push(full);
    writeFileSync(join(full, 'mine'), 'keep me\n');
    const refused = await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', full]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/is not empty, and a restore never writes over existing files/);
    expect(readFileSync(join(full, 'mine'), 'utf8')).toBe('keep me\n');

    const dotdot = await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', `${full}/../escape`]);
    expect(dotdot.code).not.toBe(0);
    expect(dotdot.stderr).toMatch(/may not contain a "\.\." part/);

    const parent = tempDir('links');
    dirs.push(parent);
    mkdirSync(join(parent, 'empty'));
    symlinkSync(join(parent, 'empty'), join(parent, 'link'));
    const viaLink = await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', join(parent, 'link')]);
    expect(viaLink.code).not.toBe(0);
    expect(viaLink.stderr).toMatch(/is a symbolic link/);

    const inData = await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', join(box.dataDir, 'x')]);
    expect(inData.code).not.toBe(0);
    expect(inData.stderr).toMatch(/in the agent's own data directory/);
  }, 120_000);

  it("a restore into an empty directory keeps that directory's mode", async () => {
    const dir = project();
    await run(box.home, ['backup', 'set', 'box', '--path', dir]);
    expect((await run(box.home, ['backup', 'now', 'box'])).code).toBe(0);
    const parent = tempDir('restore');
    dirs.push(parent);
    const empty = join(parent, 'empty');
    mkdirSync(empty);
    chmodSync(empty, 0o751);
    const restored = await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', empty]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(statSync(empty).mode & 0o7777).toBe(0o751);
    expect(readFileSync(join(empty, dir, 'README'), 'utf8')).toBe('hello\n');
  }, 120_000);

  // Another user who can write the directory a restore goes in could swap the staging directory for a
  // symbolic link while the agent removes or renames it: refused unless that directory is sticky.
  it('a restore refuses a place under a directory others can write to without the sticky bit, and takes a sticky one', async () => {
    const dir = project();
    await run(box.home, ['backup', 'set', 'box', '--path', dir]);
    expect((await run(box.home, ['backup', 'now', 'box'])).code).toBe(0);
    const parent = tempDir('shared');
    dirs.push(parent);
    const open = join(parent, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    for (const to of [join(open, 'here'), join(open, 'new', 'here')]) {
      const refused = await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', to]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(
        `is under ${open}, which other users can write to (mode 0777, no sticky bit): they could swap the directory the restore writes for a symbolic link while it runs; restore under a directory only you can write, or a sticky one such as /tmp`,
      );
      expect(refused.stderr).not.toContain('restoring');
    }
    expect(readdirSync(open)).toEqual([]);

    chmodSync(open, 0o1777);
    const restored = await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', join(open, 'here')]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(readFileSync(join(open, 'here', dir, 'README'), 'utf8')).toBe('hello\n');
    expect(readdirSync(open)).toEqual(['here']);
  }, 120_000);

  it('leaves out what --exclude names (restic patterns), keeps them across a restart, and refuses a bad one', async () => {
    const dir = project();
    writeFileSync(join(dir, 'debug.log'), 'noise\n');
    writeFileSync(join(dir, 'src', 'trace.log'), 'noise\n');
    mkdirSync(join(dir, 'tmp'));
    writeFileSync(join(dir, 'tmp', 'scratch'), 'scratch\n');
    const set = await run(box.home, [
      'backup',
      'set',
      'box',
      '--path',
      dir,
      '--exclude',
      '*.log',
      '--exclude',
      join(dir, 'tmp'),
    ]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain(`backs up ${dir} (leaving out *.log, ${join(dir, 'tmp')}) to `);
    await box.restartAgent();
    const status = await run(box.home, ['backup', 'status', 'box']);
    expect(status.stdout).toContain(`excludes:   *.log, ${join(dir, 'tmp')}`);
    const made = await run(box.home, ['backup', 'now', 'box']);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toMatch(/: 3 files, /);
    const to = restoreTarget();
    expect((await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', to])).code).toBe(0);
    expect(readdirSync(join(to, dir)).sort()).toEqual(['README', 'blob.bin', 'src']);
    expect(readdirSync(join(to, dir, 'src'))).toEqual(['main.c']);

    // Refused by the same checks before anything changes: the excludes set stay.
    for (const [pattern, said] of [
      ['', 'settings.excludes.0: an exclude pattern is empty'],
      ['data[1', 'settings.excludes.0: not a pattern restic takes'],
      ['x'.repeat(1025), 'settings.excludes.0: '],
    ] as const) {
      const bad = await run(box.home, ['backup', 'set', 'box', '--path', dir, '--exclude', pattern]);
      expect(bad.code, pattern).not.toBe(0);
      expect(bad.stderr, pattern).toContain(said);
    }
    const many = ['--path', dir, ...Array.from({ length: 65 }, (_, i) => ['--exclude', `n${i}`]).flat()];
    const tooMany = await run(box.home, ['backup', 'set', 'box', ...many]);
    expect(tooMany.stderr).toContain('settings.excludes: at most 64 exclude patterns');
    expect((await run(box.home, ['backup', 'status', 'box'])).stdout).toContain('excludes:   *.log');
    // Set again without --exclude: none left out.
    expect((await run(box.home, ['backup', 'set', 'box', '--path', dir])).code).toBe(0);
    expect((await run(box.home, ['backup', 'status', 'box'])).stdout).not.toContain('excludes:');
  }, 120_000);

  // --include takes a restic pattern: a name with `[`, `*` or `?` matched nothing (0 files, "ok").
  it('restores an --include whose name is a restic pattern, and says so when one is not in the snapshot', async () => {
    const dir = project();
    writeFileSync(join(dir, 'a[1]*?.txt'), 'odd name\n');
    writeFileSync(join(dir, 'a1x.txt'), 'not me\n');
    await run(box.home, ['backup', 'set', 'box', '--path', dir]);
    expect((await run(box.home, ['backup', 'now', 'box'])).code).toBe(0);

    const to = restoreTarget();
    const odd = join(dir, 'a[1]*?.txt');
    const restored = await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', to, '--include', odd]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toMatch(/: 1 file, /);
    expect(readdirSync(join(to, dir))).toEqual(['a[1]*?.txt']);
    expect(readFileSync(join(to, odd), 'utf8')).toBe('odd name\n');

    const elsewhere = restoreTarget();
    const missing = join(dir, 'not-there');
    const none = await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', elsewhere, '--include', missing]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain(`nothing restored: ${missing} is not in snapshot latest`);
    expect(existsSync(elsewhere)).toBe(false);
    expect(readdirSync(join(elsewhere, '..'))).toEqual([]);
  }, 120_000);

  // Another user's empty directory (say one made in /tmp before you named it) is theirs to read and
  // to fill with symbolic links while restic writes: the restore refuses it.
  it.runIf(process.getuid?.() === 0)(
    "a restore refuses an empty directory of another user's",
    async () => {
      const dir = project();
      await run(box.home, ['backup', 'set', 'box', '--path', dir]);
      expect((await run(box.home, ['backup', 'now', 'box'])).code).toBe(0);
      const parent = tempDir('theirs');
      dirs.push(parent);
      const theirs = join(parent, 'theirs');
      mkdirSync(theirs, { mode: 0o777 });
      chownSync(theirs, 65534, 65534);
      const refused = await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', theirs]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/belongs to another user/);
      expect(readdirSync(theirs)).toEqual([]);
    },
    120_000,
  );

  // "backing up …" / "restoring …" say the host took the run on: not printed before a refusal.
  it('says nothing of backing up or restoring when the host refuses', async () => {
    const unknown = await run(box.home, ['backup', 'now', 'nosuchhost']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).not.toContain('backing up');
    const refused = await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', join(box.dataDir, 'x')]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/in the agent's own data directory/);
    expect(refused.stderr).not.toContain('restoring');
  }, 60_000);
});

describe('backups on a schedule', () => {
  // A test-only clock: a second of the schedule lasts 20 ms, so `--every 1m` comes round in 1.2 s.
  const box = usePairedHost({ beforeStart: seedRepository, agent: { extraArgs: ['--backup-second-ms', '20'] } });

  it('runs due backups itself, records each, and prunes to the keep policy', async () => {
    const dir = project();
    const set = await run(box.home, ['backup', 'set', 'box', '--path', dir, '--every', '1m', '--keep-last', '2']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain('every 1m, keeping last 2');

    type Status = { recent: { state: string; trigger: string }[]; next_at: number | null; running: unknown };
    const status = async () =>
      JSON.parse((await run(box.home, ['backup', 'status', 'box', '--json'])).stdout) as Status;
    const ran = await until(
      async () => {
        // Each look is a hangar command (a Node start): a few a second are plenty.
        await new Promise((resolve) => setTimeout(resolve, 500));
        const s = await status();
        return s.recent.filter((r) => r.trigger === 'schedule' && r.state === 'ok').length >= 3 ? s : undefined;
      },
      'three scheduled backups',
      60_000,
    );
    expect(ran.next_at).not.toBeNull();
    expect(ran.recent.every((r) => r.state !== 'error')).toBe(true);
    // The schedule off, and the run it may have started ended (pruned after it): the last two stay.
    expect((await run(box.home, ['backup', 'set', 'box', '--path', dir, '--keep-last', '2'])).code).toBe(0);
    const idle = await until(
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 500));
        const s = await status();
        return s.running === null ? s : undefined;
      },
      'the last scheduled backup to end',
      60_000,
    );
    expect(idle.next_at).toBeNull();
    const snapshots = JSON.parse((await run(box.home, ['backup', 'ls', 'box', '--json'])).stdout) as unknown[];
    expect(snapshots).toHaveLength(2);
  }, 180_000);
});

describe('backups on a schedule, after the clock went back', () => {
  const box = usePairedHost({ beforeStart: seedRepository, agent: { extraArgs: ['--backup-second-ms', '20'] } });

  // The last run started "in a year" by the clock of then (set back since, say by NTP after a
  // wrong RTC): counting from it, the schedule would wait a year.
  it('runs a due backup at once, and lists the runs in the order they ran', async () => {
    const dir = project();
    expect((await run(box.home, ['backup', 'set', 'box', '--path', dir])).code).toBe(0);
    const future = Date.now() + 365 * 24 * 3600 * 1000;
    const db = new Database(join(box.dataDir, 'agent.db'));
    try {
      db.prepare(
        `INSERT INTO backup_runs (id, kind, trigger, state, started_at, finished_at, snapshot, files, bytes, added_bytes)
         VALUES ('b-00000000000000ff', 'backup', 'schedule', 'ok', ?, ?, NULL, 0, 0, 0)`,
      ).run(future, future + 1000);
    } finally {
      db.close();
    }
    expect((await run(box.home, ['backup', 'set', 'box', '--path', dir, '--every', '1m'])).code).toBe(0);
    type Status = { recent: { id: string; state: string; trigger: string }[]; next_at: number | null };
    const ran = await until(
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 500));
        const s = JSON.parse((await run(box.home, ['backup', 'status', 'box', '--json'])).stdout) as Status;
        // Every 1.2 s by the test clock: the newest is often still running, so any that ended ok.
        const ok = s.recent.some((r) => r.id !== 'b-00000000000000ff' && r.trigger === 'schedule' && r.state === 'ok');
        return ok ? s : undefined;
      },
      'a scheduled backup',
      60_000,
    );
    const seen = JSON.stringify(ran);
    expect(ran.recent[0]!.id, seen).not.toBe('b-00000000000000ff');
    expect(ran.recent[0]!.trigger, seen).toBe('schedule');
    expect(ran.next_at, seen).toBeLessThan(future);
    // The schedule off and its last run ended, so that no restic still writes the data directory as
    // the test removes it (the agent does not wait for the restic it stops).
    expect((await run(box.home, ['backup', 'set', 'box', '--path', dir])).code).toBe(0);
    await until(
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 500));
        const s = JSON.parse((await run(box.home, ['backup', 'status', 'box', '--json'])).stdout) as {
          running: unknown;
        };
        return s.running === null ? true : undefined;
      },
      'the last scheduled backup to end',
      60_000,
    );
  }, 120_000);
});

describe('one restic run at a time', () => {
  // The real restic, whose backups wait (at most 30 s) until the test opens the gate: so the test
  // asks again while one surely runs.
  const slow = tempDir('slow-restic');
  const gate = join(slow, 'open');
  writeFileSync(
    join(slow, 'restic'),
    `#!/bin/sh\nif [ "$1" = backup ]; then i=0; while [ ! -e ${gate} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; fi\nexec /usr/bin/restic "$@"\n`,
    { mode: 0o755 },
  );
  // One host for both: the first counts the snapshots (one, its own), the second none; the second
  // closes the gate again before it starts, and waits for its backup to end.
  const box = usePairedHost({
    shared: true,
    beforeStart: seedRepository,
    agent: { extraArgs: ['--restic', join(slow, 'restic')] },
  });
  afterAll(() => removeDir(slow));

  it('a second backup joins the running one, and a restore meanwhile is refused, saying what runs', async () => {
    const dir = project();
    await run(box.home, ['backup', 'set', 'box', '--path', dir]);
    const first = run(box.home, ['backup', 'now', 'box', '--json']);
    await until(async () => {
      const status = JSON.parse((await run(box.home, ['backup', 'status', 'box', '--json'])).stdout) as {
        running: unknown;
      };
      return status.running ?? undefined;
    }, 'the backup to run');
    const refused = await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', restoreTarget()]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/cannot restore now: a backup \(b-[0-9a-f]{16}\) is running on this host since/);
    // Over the link, backup.now answers at once with the run it started or joined.
    const core = await HangarCore.open({ home: box.home });
    try {
      const joined = await core.connection('box').call('backup.now', {});
      expect(joined.state).toBe('running');
      writeFileSync(gate, '');
      const ended = JSON.parse((await first).stdout) as { id: string; state: string };
      expect(ended.id).toBe(joined.id);
      expect(ended.state).toBe('ok');
    } finally {
      await core.dispose();
    }
    expect(JSON.parse((await run(box.home, ['backup', 'ls', 'box', '--json'])).stdout)).toHaveLength(1);
  }, 120_000);

  it('Ctrl-C on backup now stops the watching only, and says the backup goes on and where to see it', async () => {
    rmSync(gate, { force: true });
    await run(box.home, ['backup', 'set', 'box', '--path', project()]);
    const watching = spawn(process.execPath, [HANGAR_BIN, 'backup', 'now', 'box'], {
      env: { ...process.env, HANGAR_HOME: box.home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    watching.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => watching.once('exit', (code) => resolve(code)));
    try {
      await until(async () => {
        const status = JSON.parse((await run(box.home, ['backup', 'status', 'box', '--json'])).stdout) as {
          running: unknown;
        };
        return status.running ?? undefined;
      }, 'the backup to run');
      watching.kill('SIGINT');
      expect(await exited).toBe(130);
      expect(stderr).toContain(
        'hangar: stopped watching; the run goes on on box: see it with: hangar backup status box',
      );
      const status = JSON.parse((await run(box.home, ['backup', 'status', 'box', '--json'])).stdout) as {
        running: unknown;
      };
      expect(status.running).not.toBeNull();
    } finally {
      watching.kill('SIGKILL');
      writeFileSync(gate, '');
    }
    await until(async () => {
      const status = JSON.parse((await run(box.home, ['backup', 'status', 'box', '--json'])).stdout) as {
        running: unknown;
        last: { state: string } | null;
      };
      return status.running === null && status.last?.state === 'ok' ? true : undefined;
    }, 'the backup to end');
  }, 120_000);
});

describe('a restore that takes a while', () => {
  // The real restic, its restore held to 2 MB/s (restic's own --limit-download): the 8 MB below take
  // seconds, so the agent looks at what was written many times before the end.
  const slow = tempDir('slow-restore');
  writeFileSync(
    join(slow, 'restic'),
    `#!/bin/sh\nif [ "$1" = restore ]; then exec /usr/bin/restic --limit-download 2000 "$@"; fi\nexec /usr/bin/restic "$@"\n`,
    { mode: 0o755 },
  );
  const box = usePairedHost({ beforeStart: seedRepository, agent: { extraArgs: ['--restic', join(slow, 'restic')] } });
  afterAll(() => removeDir(slow));

  it('shows its progress as a backup does: bytes and files written against the snapshot', async () => {
    const dir = project();
    mkdirSync(join(dir, 'big'));
    for (let i = 0; i < 16; i += 1) writeFileSync(join(dir, 'big', `part${i}`), randomBytes(512 * 1024));
    await run(box.home, ['backup', 'set', 'box', '--path', dir]);
    expect((await run(box.home, ['backup', 'now', 'box'])).code).toBe(0);
    const to = restoreTarget();
    const restored = await run(box.home, ['backup', 'restore', 'box', 'latest', '--to', to]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toMatch(/restored latest into .*: 19 files, 8\.\d MiB/);
    // On a pipe, a line at each quarter: at least one before the end, each against the whole.
    const lines = restored.stderr.split('\n').filter((line) => /^restoring latest on box: \d+% /.test(line));
    expect(lines.length, restored.stderr).toBeGreaterThanOrEqual(1);
    for (const line of lines) expect(line).toMatch(/: [1-9]\d?% [\d.]+ [KM]iB \/ 8\.\d MiB, \d+ \/ 19 files$/);
    expect(readFileSync(join(to, dir, 'big', 'part15'))).toEqual(readFileSync(join(dir, 'big', 'part15')));
  }, 120_000);
});

describe('an agent killed during a restore', () => {
  // restic restores for real, then goes on (at most 30 s) writing into its target ($4, the staging
  // directory) as restic does, making the directories of what it restores: the agent is killed
  // meanwhile, and its restic outlives it (a SIGKILL of the agent is not one of its children).
  const slow = tempDir('killed-restore');
  const pidFile = join(slow, 'pid');
  writeFileSync(
    join(slow, 'restic'),
    `#!/bin/sh\nif [ "$1" = restore ]; then echo $$ > ${pidFile}; /usr/bin/restic "$@"; i=0; while [ $i -lt 300 ]; do sleep 0.1; mkdir -p "$4/late"; i=$((i+1)); done; exit 1; fi\nexec /usr/bin/restic "$@"\n`,
    { mode: 0o755 },
  );
  // One host for both: each restores into a directory of its own and looks only at its own restore
  // and run. The first starts the agent again (with this restic: the second's restore must take as
  // long); the second stops it, so it goes last.
  const agentOptions = { extraArgs: ['--restic', join(slow, 'restic')] };
  const box = usePairedHost({ shared: true, beforeStart: seedRepository, agent: agentOptions });
  afterAll(() => removeDir(slow));

  it('leaves no staging directory after the next start, and removes nothing it did not make', async () => {
    const dir = project();
    await run(box.home, ['backup', 'set', 'box', '--path', dir]);
    expect((await run(box.home, ['backup', 'now', 'box'])).code).toBe(0);
    const parent = tempDir('restore');
    dirs.push(parent);
    const to = join(parent, 'here');
    // Named as the agent names its own, but the user's: stays. So does a link named so.
    mkdirSync(join(parent, '.here.restoring-AbC123'));
    writeFileSync(join(parent, '.here.restoring-AbC123', 'mine'), 'mine\n');
    symlinkSync(dir, join(parent, '.here.restoring-LnK123'));
    const core = await HangarCore.open({ home: box.home });
    try {
      const started = await core.connection('box').call('backup.restore', { snapshot: 'latest', to });
      expect(started.state).toBe('running');
    } finally {
      await core.dispose();
    }
    const staging = await until(() => {
      const made = readdirSync(parent).filter(
        (name) => !['.here.restoring-AbC123', '.here.restoring-LnK123'].includes(name),
      );
      return made.length === 1 && existsSync(join(parent, made[0]!, dir, 'README'))
        ? join(parent, made[0]!)
        : undefined;
    }, 'restic to write into the staging directory');
    const restic = Number(readFileSync(pidFile, 'utf8'));
    // Gone, or a zombie no one has reaped yet (its parent, the agent, was killed).
    const alive = () => {
      const stat = existsSync(`/proc/${restic}/stat`) ? readFileSync(`/proc/${restic}/stat`, 'utf8') : '';
      return stat !== '' && !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
    };
    try {
      await box.agent.stop('SIGKILL');
      box.agent = await startAgentProcess(box.dataDir, { ...agentOptions, port: box.agent.port });
      // The new agent stops the restic left writing (else it made the staging directory again
      // once removed), then removes the staging directory.
      await until(() => (alive() ? undefined : true), 'the restic the killed agent left to be stopped');
      await until(() => (existsSync(staging) ? undefined : true), 'the staging directory to go');
    } finally {
      if (alive()) process.kill(restic, 'SIGKILL');
    }
    expect(readdirSync(parent).sort()).toEqual(['.here.restoring-AbC123', '.here.restoring-LnK123']);
    expect(readFileSync(join(parent, '.here.restoring-AbC123', 'mine'), 'utf8')).toBe('mine\n');
    expect(readFileSync(join(dir, 'README'), 'utf8')).toBe('hello\n');
    const status = JSON.parse((await run(box.home, ['backup', 'status', 'box', '--json'])).stdout) as {
      recent: { kind: string; state: string; message: string }[];
    };
    expect(status.recent[0]).toMatchObject({
      kind: 'restore',
      state: 'error',
      message: 'the agent stopped during this restore; nothing was restored: run it again (hangar backup restore)',
    });
  }, 120_000);

  it('that stops (SIGTERM) during a restore removes what it wrote before it has exited', async () => {
    const dir = project();
    await run(box.home, ['backup', 'set', 'box', '--path', dir]);
    expect((await run(box.home, ['backup', 'now', 'box'])).code).toBe(0);
    const parent = tempDir('restore');
    dirs.push(parent);
    const core = await HangarCore.open({ home: box.home });
    try {
      const started = await core
        .connection('box')
        .call('backup.restore', { snapshot: 'latest', to: join(parent, 'here') });
      expect(started.state).toBe('running');
    } finally {
      await core.dispose();
    }
    await until(() => {
      const made = readdirSync(parent);
      return made.length === 1 && existsSync(join(parent, made[0]!, dir, 'README')) ? true : undefined;
    }, 'restic to write into the staging directory');
    await box.agent.stop('SIGTERM');
    expect(readdirSync(parent)).toEqual([]);
  }, 120_000);
});

describe('an agent that stops during a backup', () => {
  let agent: AgentProcess | undefined;
  let parent: string;
  afterAll(async () => endAgent(agent, parent));

  // A restic that, on SIGINT, takes a while to end (as the real one does, writing and removing its
  // lock): the agent must not be gone before it is, or a new agent finds the repository locked.
  it('ends only once restic has ended', async () => {
    parent = tempDir('stop-during');
    const started = join(parent, 'started');
    const ended = join(parent, 'ended');
    writeFileSync(
      join(parent, 'restic'),
      `#!/bin/sh\nif [ "$1" = backup ]; then trap 'sleep 1; touch ${ended}; exit 130' INT; touch ${started}; while :; do sleep 0.1; done; fi\nexec /usr/bin/restic "$@"\n`,
      { mode: 0o755 },
    );
    const home = join(parent, 'home');
    seedRepository(join(parent, 'agent-data'));
    agent = await startAgentProcess(join(parent, 'agent-data'), { extraArgs: ['--restic', join(parent, 'restic')] });
    await pairWith(home, 'box', agent);
    expect((await run(home, ['backup', 'set', 'box', '--path', project()])).code).toBe(0);
    const core = await HangarCore.open({ home });
    try {
      expect((await core.connection('box').call('backup.now', {})).state).toBe('running');
    } finally {
      await core.dispose();
    }
    await until(async () => existsSync(started) || undefined, 'restic to run');
    await agent.stop('SIGTERM');
    expect(existsSync(ended)).toBe(true);
  }, 120_000);
});

// restic's --exclude takes a pattern: "agent-data[1]*?" unescaped matches "agent-data1…", not itself.
describe.each([
  ['agent-data', ''],
  ['agent-data[1]*?', ', whose name is a restic pattern'],
])("a directory that holds the agent's data directory %s%s", (dataName) => {
  let agent: AgentProcess | undefined;
  let parent: string;
  afterAll(async () => endAgent(agent, parent));

  // restic reads "!pattern" as a negation, and the last matching pattern decides: the user's
  // excludes came after the agent's own, and "!*" put the keys back in the snapshot.
  it("is backed up without it: no keys and no backup password in the snapshot, whatever the user's excludes say", async () => {
    parent = tempDir('holds-agent');
    const home = join(parent, 'home');
    writeFileSync(join(parent, 'work.txt'), 'mine\n');
    seedRepository(join(parent, dataName));
    agent = await startAgentProcess(join(parent, dataName));
    await pairWith(home, 'box', agent);
    const negations = ['!*', '!**', `!${join(parent, dataName).replace(/[\\*?[]/g, (c) => `\\${c}`)}`].flatMap((p) => [
      '--exclude',
      p,
    ]);
    expect((await run(home, ['backup', 'set', 'box', '--path', parent, ...negations])).code).toBe(0);
    expect((await run(home, ['backup', 'now', 'box'])).code).toBe(0);
    const to = restoreTarget();
    expect((await run(home, ['backup', 'restore', 'box', 'latest', '--to', to])).code).toBe(0);
    expect(readFileSync(join(to, parent, 'work.txt'), 'utf8')).toBe('mine\n');
    expect(existsSync(join(parent, dataName, 'backups', 'password'))).toBe(true);
    expect(readdirSync(join(to, parent)).sort()).toEqual(['home', 'work.txt']);
  }, 120_000);
});

describe('the backup key', () => {
  const box = usePairedHost();

  // A crash between making the key file and writing it left it empty, and restic refuses an empty
  // password: every backup failed. A key file others can read is made 0600 again.
  it('is made whole in place of an empty file left by a crash, and kept 0600', async () => {
    const dir = project();
    const file = join(box.dataDir, 'backups', 'password');
    mkdirSync(join(box.dataDir, 'backups'), { recursive: true, mode: 0o700 });
    writeFileSync(file, '', { mode: 0o600 });
    expect((await run(box.home, ['backup', 'set', 'box', '--path', dir])).code).toBe(0);
    const first = await run(box.home, ['backup', 'now', 'box']);
    expect(first.code, first.stderr).toBe(0);
    const key = readFileSync(file, 'utf8').trim();
    expect(key.length).toBeGreaterThan(20);
    chmodSync(file, 0o644);
    const second = await run(box.home, ['backup', 'now', 'box']);
    expect(second.code, second.stderr).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toBe(key);
  }, 120_000);
});

describe('backups without restic', () => {
  const box = usePairedHost({ agent: { extraArgs: ['--restic', '/nonexistent/restic'] } });

  it('says how to install restic', async () => {
    const dir = project();
    const set = await run(box.home, ['backup', 'set', 'box', '--path', dir]);
    expect(set.stdout).toMatch(/warning: restic is not installed on this host/);
    // No backup yet: unlock says there is nothing to unlock, and makes no key (it made one before).
    const unlock = await hangarAgent(['backup', 'unlock', '--data', box.dataDir]);
    expect(unlock.code).not.toBe(0);
    expect(unlock.stderr).toContain(`no backup has run with the agent data in ${box.dataDir}`);
    expect(existsSync(join(box.dataDir, 'backups', 'password'))).toBe(false);
    const now = await run(box.home, ['backup', 'now', 'box']);
    expect(now.code).not.toBe(0);
    expect(now.stderr).toMatch(/sudo apt-get install restic/);
  });
});
