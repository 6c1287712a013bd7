import { lchown, readdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The host user a sandboxed job runs as when the agent is root. bwrap is started *as* that user
 * (an unprivileged bwrap: its user namespace maps the user to itself, with no capability), so
 * nothing the job does carries root's powers, inside the sandbox or outside it.
 */
export interface JobUser {
  name: string;
  uid: number;
  gid: number;
}

/**
 * Preferred: a user of its own, made by the installer, so that no other process on the host shares
 * the job's uid (a process of the same uid could signal or ptrace the job, and on kernels before
 * 5.14 RLIMIT_NPROC counts every process of that uid). `nobody` is the fallback every system has.
 */
export const JOB_USER_NAMES = ['hangar-job', 'nobody'] as const;

export const CREATE_JOB_USER =
  'useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hangar-job';

/**
 * The first of `names` in the passwd file that is not root. The installer makes `hangar-job` a
 * local system user, so the file (not NSS) is where it lives; `nobody` is there on every system.
 */
export function findJobUser(
  passwdFile = '/etc/passwd',
  names: readonly string[] = JOB_USER_NAMES,
): JobUser | undefined {
  const entries = new Map<string, JobUser>();
  for (const line of readFileSync(passwdFile, 'utf8').split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (!name || uid === undefined || gid === undefined || !/^\d+$/.test(uid) || !/^\d+$/.test(gid)) continue;
    if (!entries.has(name)) entries.set(name, { name, uid: Number(uid), gid: Number(gid) });
  }
  return names.map((name) => entries.get(name)).find((user) => user !== undefined && user.uid !== 0);
}

/**
 * Gives a workdir and everything in it to the job's user, so the job can write /work and nothing
 * else. Symlinks are changed themselves (lchown) and never followed: a workspace's links must not
 * hand a file outside the workdir to the job.
 */
export async function chownTree(dir: string, user: Pick<JobUser, 'uid' | 'gid'>): Promise<void> {
  await lchown(dir, user.uid, user.gid);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(path, user);
    else await lchown(path, user.uid, user.gid);
  }
}
