import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { tempDir } from './relay-fixture.js';

const run = promisify(execFile);
const PORT = 5432; // the cluster listens on a unix socket in its own dir only, so any port is free

/**
 * A real PostgreSQL (Debian's `postgresql` package) for one test file: initdb in a temp dir,
 * run as an unprivileged user (postgres, or nobody) when the tests run as root, listening on a
 * unix socket in that dir only, stopped and removed at the end.
 */
export interface TestPostgres extends AsyncDisposable {
  /** A fresh, empty database; returns its postgres:// URL. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

function pgBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (newest === undefined) {
    throw new Error('PostgreSQL is not installed: apt-get install postgresql (see README "System packages")');
  }
  return join(root, newest, 'bin');
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = pgBin();
  const dir = tempDir('pg');
  const data = join(dir, 'data');
  const socketDir = join(dir, 'sock');
  mkdirSync(socketDir);
  const asRoot = userInfo().uid === 0;
  const user = asRoot ? await unprivilegedUser() : undefined;
  if (user !== undefined) {
    for (const path of [dir, socketDir]) chownSync(path, user.uid, user.gid);
  }
  const as = (command: string, args: string[]) =>
    user !== undefined ? run('runuser', ['-u', user.name, '--', command, ...args]) : run(command, args);
  await as(join(bin, 'initdb'), ['-D', data, '-U', 'hangar', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  // Small and quick: no TCP, fsync off (the tests need a real server, not a durable one).
  writeFileSync(join(dir, 'postgres.log'), '');
  if (user !== undefined) chownSync(join(dir, 'postgres.log'), user.uid, user.gid);
  const options = `-k ${socketDir} -p ${PORT} -c listen_addresses='' -c fsync=off -c max_connections=200`;
  await as(join(bin, 'pg_ctl'), [
    '-D',
    data,
    '-o',
    options,
    '-l',
    join(dir, 'postgres.log'),
    '-w',
    '-t',
    '30',
    'start',
  ]);
  const url = (database: string) =>
    `postgres://hangar@localhost:${PORT}/${database}?host=${encodeURIComponent(socketDir)}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await as(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    async createDatabase(name) {
      const admin = new pg.Client({ connectionString: url('postgres') });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name.replace(/[^a-z0-9_]/g, '_')}`);
      } finally {
        await admin.end();
      }
      return url(name.replace(/[^a-z0-9_]/g, '_'));
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

async function unprivilegedUser(): Promise<{ name: string; uid: number; gid: number }> {
  for (const name of ['postgres', 'nobody']) {
    try {
      const { stdout } = await run('id', ['-u', name]);
      const { stdout: gid } = await run('id', ['-g', name]);
      return { name, uid: Number(stdout.trim()), gid: Number(gid.trim()) };
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ENOENT') throw error; // no `id` at all
      // No such user: try the next one.
    }
  }
  throw new Error('no unprivileged user (postgres or nobody) to run PostgreSQL as');
}
