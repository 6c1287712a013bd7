import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/hangar.js', import.meta.url));
const home = mkdtempSync(join(tmpdir(), 'hangar-complete-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));

function complete(...words: string[]): string[] {
  const out = execFileSync(process.execPath, [bin, '__complete', ...words], {
    env: { ...process.env, HANGAR_HOME: home },
    encoding: 'utf8',
  });
  return out.split('\n').filter((line) => line !== '');
}

describe('hangar __complete: the options a command offers', () => {
  it('offers the options its help lists, not one hidden from help (devices approve --fingerprint)', () => {
    const offered = complete('devices', 'approve', 'beta', '-');
    expect(offered).toEqual(expect.arrayContaining(['--code', '--yes']));
    expect(offered).not.toContain('--fingerprint');
  });
});
