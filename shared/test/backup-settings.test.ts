import { describe, expect, it } from 'vitest';
import { BackupRestoreParams, BackupSettings, CORE_PROCEDURES, HOST_PROCEDURES } from '@hangar/shared';

/** The first problem zod finds, as `path: message`. */
function problem(schema: typeof BackupSettings | typeof BackupRestoreParams, input: unknown): string {
  const parsed = schema.safeParse(input);
  if (parsed.success) return 'accepted';
  const issue = parsed.error.issues[0]!;
  return `${issue.path.join('.')}: ${issue.message}`;
}

describe("a host's backup settings", () => {
  it('takes paths alone: on demand only, every snapshot kept, the default repository', () => {
    expect(BackupSettings.parse({ paths: ['~/src', '/srv/data'] })).toEqual({
      paths: ['~/src', '/srv/data'],
      every_s: null,
      keep: {},
      repository: null,
    });
  });

  it('refuses a relative path, a ".." part and no path at all, naming the field', () => {
    expect(problem(BackupSettings, { paths: [] })).toBe('paths: name at least one directory to back up (--path DIR)');
    expect(problem(BackupSettings, { paths: ['src'] })).toBe(
      'paths.0: expected an absolute path on the host, or one starting with ~/',
    );
    expect(problem(BackupSettings, { paths: ['/srv/../etc'] })).toBe(
      'paths.0: a path may not contain a ".." part: name it directly',
    );
    expect(problem(BackupSettings, { paths: ['~/..'] })).toMatch(/^paths\.0: a path may not contain a "\.\." part/);
    expect(problem(BackupSettings, { paths: ['/a\0b'] })).toMatch(/^paths\.0: may not contain a NUL byte/);
  });

  it('takes a schedule of a minute or more and whole keep counts of at least one', () => {
    expect(problem(BackupSettings, { paths: ['/x'], every_s: 59 })).toBe('every_s: the schedule is at least 1m apart');
    expect(problem(BackupSettings, { paths: ['/x'], every_s: 60, keep: { last: 3, daily: 7 } })).toBe('accepted');
    expect(problem(BackupSettings, { paths: ['/x'], keep: { last: 0 } })).toBe(
      'keep.last: keep at least 1 (leave the option out to not limit it)',
    );
    expect(problem(BackupSettings, { paths: ['/x'], keep: { forever: 1 } })).toMatch(/^keep: /);
  });

  it("takes restic's exclude patterns, and refuses an empty one, one restic would refuse, and too many", () => {
    const excludes = ['*.log', 'node_modules', '/srv/data/tmp', 'a\\[1]', '[abc]*', '-odd', '!keep.log'];
    expect(problem(BackupSettings, { paths: ['/x'], excludes })).toBe('accepted');
    expect(BackupSettings.parse({ paths: ['/x'] }).excludes).toBeUndefined();
    expect(problem(BackupSettings, { paths: ['/x'], excludes: [''] })).toMatch(
      /^excludes\.0: an exclude pattern is empty/,
    );
    for (const bad of ['data[1', 'ends\\', '[\\]']) {
      expect(problem(BackupSettings, { paths: ['/x'], excludes: [bad] }), bad).toMatch(
        /^excludes\.0: not a pattern restic takes/,
      );
    }
    expect(problem(BackupSettings, { paths: ['/x'], excludes: ['a\nb'] })).toMatch(/^excludes\.0: .*line break/);
    expect(problem(BackupSettings, { paths: ['/x'], excludes: ['x'.repeat(1025)] })).toMatch(
      /^excludes\.0: an exclude pattern is longer than 1024 characters: /,
    );
    expect(problem(BackupSettings, { paths: ['/x'], excludes: Array.from({ length: 65 }, (_, i) => `n${i}`) })).toBe(
      'excludes: at most 64 exclude patterns',
    );
  });

  it("takes restic's repository forms, and refuses an option, a relative path and a password in the location", () => {
    for (const repository of [
      '/mnt/backups/repo',
      'sftp:me@nas:/srv/restic',
      'rest:https://nas:8000/',
      's3:s3.amazonaws.com/b',
    ]) {
      expect(problem(BackupSettings, { paths: ['/x'], repository })).toBe('accepted');
    }
    expect(problem(BackupSettings, { paths: ['/x'], repository: '--repo=/x' })).toMatch(
      /^repository: .*start with "-"/,
    );
    expect(problem(BackupSettings, { paths: ['/x'], repository: 'repo' })).toMatch(
      /^repository: expected an absolute directory on the host or a restic location/,
    );
    expect(problem(BackupSettings, { paths: ['/x'], repository: 'rest:https://me:secret@nas:8000/' })).toMatch(
      /^repository: the location carries a password: keep credentials on the host/,
    );
  });

  it('refuses an sftp host that ssh would read as an option (restic passes the host to ssh first)', () => {
    for (const repository of [
      'sftp:-oProxyCommand=touch /tmp/x:/srv/restic',
      'sftp:me@-oProxyCommand=touch /tmp/x:/srv/restic',
      'sftp:a/b@-oProxyCommand=x:/srv/restic',
      'sftp://-oProxyCommand=x/srv/restic',
      'sftp://me@-oProxyCommand=x:22/srv/restic',
    ]) {
      expect(problem(BackupSettings, { paths: ['/x'], repository }), repository).toMatch(
        /^repository: the sftp host may not start with "-"/,
      );
    }
    for (const repository of ['sftp:me@nas-2:/srv/restic', 'sftp://me@nas:22/srv/a@-b', 'sftp:nas:/srv/-x']) {
      expect(problem(BackupSettings, { paths: ['/x'], repository }), repository).toBe('accepted');
    }
  });
});

describe('a restore', () => {
  it('takes a snapshot id or latest, and a target on the host without ".."', () => {
    expect(problem(BackupRestoreParams, { snapshot: 'latest', to: '~/restored' })).toBe('accepted');
    expect(problem(BackupRestoreParams, { snapshot: '1a2b3c4d', to: '/tmp/r', include: ['/srv/data'] })).toBe(
      'accepted',
    );
    expect(problem(BackupRestoreParams, { snapshot: '1a2b', to: '/tmp/r' })).toMatch(
      /^snapshot: expected a snapshot id/,
    );
    expect(problem(BackupRestoreParams, { snapshot: '--target=/', to: '/tmp/r' })).toMatch(/^snapshot: /);
    expect(problem(BackupRestoreParams, { snapshot: 'latest', to: '/tmp/../etc' })).toMatch(/^to: .*"\.\." part/);
    expect(problem(BackupRestoreParams, { snapshot: 'latest', to: '/tmp/r', include: ['../x'] })).toMatch(
      /^include\.0: /,
    );
  });

  it('the agent serves these backup calls on the link', () => {
    expect(Object.keys(HOST_PROCEDURES).filter((m) => m.startsWith('backup.'))).toEqual([
      'backup.set',
      'backup.status',
      'backup.now',
      'backup.snapshots',
      'backup.restore',
    ]);
  });
});

// An older core talks to a newer agent (the agent is updated host by host): what the agent answers may
// carry settings this core has not heard of, as `excludes` once was. The core reads the rest; what it
// sends stays strict.
describe('settings across versions', () => {
  const status = {
    repository: '/data/backups/restic',
    restic_version: '0.14.0',
    restic_missing: null,
    running: null,
    last: null,
    last_ok: null,
    next_at: null,
    recent: [],
  };
  const newer = {
    paths: ['/srv/data'],
    every_s: 3600,
    keep: { daily: 7, within: '2y' },
    repository: null,
    compression: 'max',
  };

  it("reads a newer agent's status, leaving out the keys it does not know", () => {
    for (const result of [HOST_PROCEDURES['backup.status'].result, HOST_PROCEDURES['backup.set'].result]) {
      const parsed = result.safeParse({ ...status, settings: newer });
      expect(parsed.success, parsed.error?.message).toBe(true);
      expect(parsed.data!.settings).toEqual({
        paths: ['/srv/data'],
        every_s: 3600,
        keep: { daily: 7 },
        repository: null,
      });
    }
    // Known fields are still checked as strictly.
    expect(
      HOST_PROCEDURES['backup.status'].result.safeParse({ ...status, settings: { ...newer, paths: [] } }).success,
    ).toBe(false);
    expect(HOST_PROCEDURES['backup.status'].result.safeParse({ ...status, settings: null }).success).toBe(true);
  });

  it('refuses a key it does not know in what it sends, naming it', () => {
    const issue = (parsed: { success: boolean; error?: { issues: { message: string }[] } }): string =>
      parsed.success ? 'accepted' : parsed.error!.issues[0]!.message;
    expect(issue(HOST_PROCEDURES['backup.set'].params.safeParse({ paths: ['/x'], compression: 'max' }))).toMatch(
      /compression/,
    );
    expect(issue(HOST_PROCEDURES['backup.set'].params.safeParse({ paths: ['/x'], keep: { within: '2y' } }))).toMatch(
      /within/,
    );
    expect(
      issue(
        CORE_PROCEDURES['backups.set'].params.safeParse({
          host: 'box',
          settings: { paths: ['/x'], compression: 'max' },
        }),
      ),
    ).toMatch(/compression/);
  });
});
