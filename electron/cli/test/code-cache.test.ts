import { execFile } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { HANGAR_BIN, tempDir } from '../../../test/support/processes.js';

const run = promisify(execFile);
const homes: string[] = [];
afterEach(() => {
  for (const home of homes.splice(0)) rmSync(home, { recursive: true, force: true });
});

function startHome(): string {
  const home = tempDir('code-cache');
  chmodSync(home, 0o700);
  homes.push(home);
  return home;
}

/** `hangar …` with HANGAR_DEBUG: stdout, and what it said about the code cache of its bundle. */
async function hangar(home: string, args: string[], env: Record<string, string> = {}, bin = HANGAR_BIN) {
  const { stdout, stderr } = await run(process.execPath, [bin, ...args], {
    env: { ...process.env, HANGAR_HOME: home, HANGAR_DEBUG: '1', HANGAR_LOCAL_DOOR: 'off', ...env },
  });
  const said = /^hangar: code cache (.+): (.+)$/m.exec(stderr);
  if (!said) throw new Error(`hangar ${args.join(' ')} said nothing about its code cache: ${stderr}`);
  return { stdout, cache: said[1]!, path: said[2]! };
}

describe('the code cache of the hangar command (issue 18)', () => {
  it('is written owner-only at the first run, used by the next, and the output is the same', async () => {
    const home = startHome();
    const first = await hangar(home, ['--help']);
    expect(first.cache).toBe('absent');
    expect(statSync(join(home, 'cache')).mode & 0o777).toBe(0o700);
    expect(statSync(first.path).mode & 0o777).toBe(0o600);
    const second = await hangar(home, ['--help']);
    expect(second).toEqual({ ...first, cache: 'used' });
    expect(second.stdout).toContain('Usage: hangar');
  });

  it('is written again, once, by a run that goes a way it was not made by (commander, then the command table)', async () => {
    const home = startHome();
    const ways = (path: string) => {
      const bytes = readFileSync(path);
      return (JSON.parse(bytes.subarray(4, 4 + bytes.readUInt32LE(0)).toString('utf8')) as { ways: string[] }).ways;
    };
    // Help is commander's to read; a plain listing is read from the table.
    const first = await hangar(home, ['hosts', 'ls', '--help']);
    expect(first.cache).toBe('absent');
    expect(ways(first.path)).toEqual(['commander']);
    const second = await hangar(home, ['hosts', 'ls', '--json']);
    expect(second.cache).toBe('used');
    expect(ways(second.path)).toEqual(['commander', 'table']);
    // Written by rename: a cache written again is another inode.
    const written = statSync(second.path).ino;
    const third = await hangar(home, ['hosts', 'ls', '--json']);
    expect(third.cache).toBe('used');
    expect(third.stdout).toBe(second.stdout);
    expect(statSync(third.path).ino).toBe(written);
  });

  it('serves a command that loads the app core (an import() from a cached bundle)', async () => {
    const home = startHome();
    const first = await hangar(home, ['hosts', 'ls', '--json']);
    expect(first.cache).toBe('absent');
    const second = await hangar(home, ['hosts', 'ls', '--json']);
    expect(second.cache).toBe('used');
    expect(JSON.parse(second.stdout)).toEqual(JSON.parse(first.stdout));
  });

  it('ignores a corrupt cache, and one made from another copy of the bundle, then writes a good one', async () => {
    const home = startHome();
    const { path, stdout } = await hangar(home, ['--help']);
    const good = readFileSync(path);
    const headerEnd = 4 + good.readUInt32LE(0);

    // V8's own header garbled (ours still matches the bundle): V8 refuses it.
    const garbled = Buffer.from(good);
    garbled.fill(0x5a, headerEnd, headerEnd + 32);
    writeFileSync(path, garbled);
    expect(await hangar(home, ['--help'])).toEqual({ stdout, path, cache: 'rejected by V8' });
    expect((await hangar(home, ['--help'])).cache).toBe('used');

    // Cut short, or not a cache at all.
    writeFileSync(path, good.subarray(0, 6));
    expect(await hangar(home, ['--help'])).toEqual({ stdout, path, cache: 'corrupt' });
    writeFileSync(path, 'not a cache');
    expect((await hangar(home, ['--help'])).stdout).toBe(stdout);

    // Made from a bundle file of another size or time (rebuilt or edited since): V8 would check
    // only the length, so the cache's own header must not match.
    const header = JSON.parse(good.subarray(4, headerEnd).toString('utf8')) as { size: number; mtimeMs: number };
    const other = Buffer.from(JSON.stringify({ ...header, mtimeMs: header.mtimeMs - 1000 }));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(other.length);
    writeFileSync(path, Buffer.concat([length, other, good.subarray(headerEnd)]));
    expect(await hangar(home, ['--help'])).toEqual({ stdout, path, cache: 'made from another copy of the bundle' });
    expect((await hangar(home, ['--help'])).cache).toBe('used');
  });

  it('does not trust a cache that another user could have written', async () => {
    const home = startHome();
    const { path, stdout } = await hangar(home, ['--help']);
    const good = readFileSync(path);

    // Each is left unused, and replaced by a cache of this user's (renamed over it: the file
    // itself is never written through).
    chmodSync(path, 0o666);
    expect(await hangar(home, ['--help'])).toEqual({ stdout, path, cache: 'it is writable by others' });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect((await hangar(home, ['--help'])).cache).toBe('used');

    chownSync(path, 65534, 65534);
    expect(await hangar(home, ['--help'])).toEqual({ stdout, path, cache: 'it is owned by uid 65534' });
    expect(statSync(path).uid).toBe(process.getuid!());

    rmSync(path);
    const elsewhere = join(home, 'elsewhere.cache');
    writeFileSync(elsewhere, good, { mode: 0o600 });
    symlinkSync(elsewhere, path);
    expect((await hangar(home, ['--help'])).cache).toMatch(/ELOOP/);
    expect(lstatSync(path).isFile()).toBe(true);

    rmSync(path);
    writeFileSync(path, good, { mode: 0o600 });
    chmodSync(join(home, 'cache'), 0o777);
    expect(await hangar(home, ['--help'])).toEqual({ stdout, path, cache: 'its directory is writable by others' });
  });

  it('is neither written nor read under a state dir that others can write to', async () => {
    const home = startHome();
    chmodSync(home, 0o777);
    expect((await hangar(home, ['--help'])).cache).toBe('its directory is writable by others');
    expect(readdirSync(home)).toEqual([]);
    chmodSync(home, 0o700);
    mkdirSync(join(home, 'cache'), { mode: 0o700 });
    await hangar(home, ['--help']);
    expect(readdirSync(join(home, 'cache'))).toHaveLength(1);
  });

  it('two copies of hangar (a checkout, an installed app) sharing a state dir keep a cache each', async () => {
    const home = startHome();
    // A second copy of the built command elsewhere: its bin, its bundle and the version file.
    const copy = tempDir('code-cache-copy');
    homes.push(copy);
    const electron = join(HANGAR_BIN, '..', '..');
    for (const part of ['bin', join('cli', 'bundle'), 'package.json'])
      cpSync(join(electron, part), join(copy, 'electron', part), { recursive: true });
    const copyBin = join(copy, 'electron', 'bin', 'hangar.js');
    const [ours, theirs] = [await hangar(home, ['--help']), await hangar(home, ['--help'], {}, copyBin)];
    expect([ours.cache, theirs.cache]).toEqual(['absent', 'absent']);
    expect(theirs.path).not.toBe(ours.path);
    expect([(await hangar(home, ['--help'])).cache, (await hangar(home, ['--help'], {}, copyBin)).cache]).toEqual([
      'used',
      'used',
    ]);
    expect(readdirSync(join(home, 'cache')).sort()).toEqual(
      [ours.path, theirs.path].map((path) => path.slice(path.lastIndexOf('/') + 1)).sort(),
    );
  });

  it('HANGAR_CODE_CACHE=off: none is read or written', async () => {
    const home = startHome();
    expect((await hangar(home, ['--help'], { HANGAR_CODE_CACHE: 'off' })).cache).toBe('off');
    expect(readdirSync(home)).toEqual([]);
  });
});

describe('hangar --version', () => {
  it('prints the version of electron/package.json, running no command bundle (so writing no cache)', async () => {
    const home = startHome();
    const { version } = JSON.parse(readFileSync(join(HANGAR_BIN, '..', '..', 'package.json'), 'utf8')) as {
      version: string;
    };
    for (const flag of ['--version', '-V']) {
      const { stdout, stderr } = await run(process.execPath, [HANGAR_BIN, flag], {
        env: { ...process.env, HANGAR_HOME: home, HANGAR_DEBUG: '1' },
      });
      expect(stdout).toBe(`${version}\n`);
      expect(stderr).toBe('');
    }
    expect(readdirSync(home)).toEqual([]);
  });

  it('says so, and exits 1, when stdout cannot be written', async () => {
    const failed = await run('/bin/sh', ['-c', `"${process.execPath}" "${HANGAR_BIN}" --version > /dev/full`]).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed).toMatchObject({
      code: 1,
      stderr: 'hangar: cannot write to stdout: ENOSPC: no space left on device, write\n',
    });
  });
});
