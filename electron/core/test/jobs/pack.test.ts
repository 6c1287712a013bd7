import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { list } from 'tar';
import { afterEach, describe, expect, it } from 'vitest';
import { packWorkspace, type PackedWorkspace } from '../../src/jobs/pack.js';

const dirs: string[] = [];
const packs: PackedWorkspace[] = [];

function folder(files: Record<string, string>): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-pack-')));
  dirs.push(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

function git(dir: string, ...args: string[]): void {
  execFileSync('git', ['-c', 'user.email=t@example.com', '-c', 'user.name=t', ...args], { cwd: dir, stdio: 'ignore' });
}

async function pack(dir: string, maxBytes?: number): Promise<PackedWorkspace> {
  const packed = await packWorkspace(dir, maxBytes !== undefined ? { maxBytes } : {});
  packs.push(packed);
  return packed;
}

async function entries(packed: PackedWorkspace): Promise<Map<string, { type: string; linkpath?: string }>> {
  const seen = new Map<string, { type: string; linkpath?: string }>();
  await list({
    file: packed.path,
    onReadEntry: (entry) => {
      seen.set(entry.path, { type: entry.type, ...(entry.linkpath ? { linkpath: entry.linkpath } : {}) });
    },
  });
  return seen;
}

afterEach(async () => {
  for (const packed of packs.splice(0)) await packed.dispose();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('packing the working tree', () => {
  it('the same content gives the same hash, whatever the mtimes and creation order', async () => {
    const a = folder({ 'src/main.c': 'int main(){}\n', README: 'hi\n', 'z/deep/file.txt': 'z' });
    const b = folder({ 'z/deep/file.txt': 'z', README: 'hi\n', 'src/main.c': 'int main(){}\n' });
    utimesSync(join(b, 'README'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    const first = await pack(a);
    const second = await pack(b);
    expect(first.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(second.hash).toBe(first.hash);
    writeFileSync(join(b, 'README'), 'changed\n');
    expect((await pack(b)).hash).not.toBe(first.hash);
  });

  it('the hash is the sha256 of the tarball bytes', async () => {
    const { createHash } = await import('node:crypto');
    const packed = await pack(folder({ a: '1' }));
    const bytes = readFileSync(packed.path);
    expect(bytes.length).toBe(packed.size);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(packed.hash);
  });

  it('inside git: tracked and untracked files are packed, ignored ones are not', async () => {
    const dir = folder({
      '.gitignore': 'build/\n*.log\n',
      'src/app.ts': 'export {}\n',
      'notes.md': 'untracked but not ignored\n',
      'build/out.bin': 'ignored',
      'debug.log': 'ignored',
    });
    git(dir, 'init', '-q');
    git(dir, 'add', '.gitignore', 'src/app.ts');
    git(dir, 'commit', '-q', '-m', 'init');
    const packed = await pack(dir);
    expect(packed.source).toBe('git');
    expect([...(await entries(packed)).keys()].sort()).toEqual(['.gitignore', 'notes.md', 'src/app.ts']);
  });

  it('inside git: a tracked file deleted from the tree is left out instead of failing', async () => {
    const dir = folder({ 'keep.txt': 'k', 'gone.txt': 'g' });
    git(dir, 'init', '-q');
    git(dir, 'add', '.');
    git(dir, 'commit', '-q', '-m', 'init');
    rmSync(join(dir, 'gone.txt'));
    expect([...(await entries(await pack(dir))).keys()]).toEqual(['keep.txt']);
  });

  it('outside git: the whole folder, dotfiles included, but not downloaded artifacts', async () => {
    const dir = folder({
      '.env.example': 'A=1',
      'a/b/c.txt': 'c',
      'hangar-artifacts/j-12345678/app.ipa': 'old build output',
    });
    const packed = await pack(dir);
    expect(packed.source).toBe('folder');
    expect([...(await entries(packed)).keys()].sort()).toEqual(['.env.example', 'a/b/c.txt']);
  });

  it('symlinks are stored as symlinks, not followed', async () => {
    const dir = folder({ 'real/data.txt': 'data' });
    const outside = folder({ 'secret.txt': 'do not pack me' });
    symlinkSync('real/data.txt', join(dir, 'link.txt'));
    symlinkSync(outside, join(dir, 'outside'));
    const seen = await entries(await pack(dir));
    expect(seen.get('link.txt')).toEqual({ type: 'SymbolicLink', linkpath: 'real/data.txt' });
    expect(seen.get('outside')).toEqual({ type: 'SymbolicLink', linkpath: outside });
    expect([...seen.keys()].some((p) => p.includes('secret'))).toBe(false);
  });

  it('a workspace over the size limit is refused with a clear error', async () => {
    const dir = folder({ 'big.bin': 'x'.repeat(200_000) });
    await expect(pack(dir, 100_000)).rejects.toMatchObject({
      code: 'E_WORKSPACE_TOO_LARGE',
      message: expect.stringMatching(/packs to more than 97\.7 KiB.*\.gitignore/),
    });
  });
});
