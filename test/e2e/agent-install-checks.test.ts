import { execFile } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_BIN, removeDir, tempDir } from '../support/processes.js';

const exec = promisify(execFile);

/** Where a program is on this machine (the test host has tmux, bubblewrap and slirp4netns). */
async function which(program: string): Promise<string> {
  return (await exec('sh', ['-c', `command -v ${program}`])).stdout.trim();
}

/**
 * `hangar-agent install --dry-run` on a machine whose PATH holds only the programs given: what its
 * checks say. A dry run changes nothing, so the real HOME is never touched (a temp one is given).
 */
describe('hangar-agent install checks this machine', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach(removeDir));

  const installWith = async (programs: string[], args: string[] = []): Promise<string> => {
    const dir = tempDir('install-checks');
    dirs.push(dir);
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'home'));
    for (const program of programs) symlinkSync(await which(program), join(dir, 'bin', program));
    const { stdout } = await exec(process.execPath, [AGENT_BIN, 'install', '--user', '--dry-run', ...args], {
      env: { HOME: join(dir, 'home'), PATH: join(dir, 'bin') },
      timeout: 60_000,
    });
    return stdout.slice(0, stdout.indexOf('Dry run:'));
  };

  it.runIf(process.platform === 'linux')(
    'without slirp4netns it warns that sandbox jobs with the default network will fail, and how to install it',
    async () => {
      const checks = await installWith(['tmux', 'bwrap']);
      expect(checks).toMatch(
        /! slirp4netns: not installed: sandbox jobs with the default network \(outbound\) will fail; --network none ones run — .*slirp4netns\n/,
      );
      expect(await installWith(['tmux', 'bwrap', 'slirp4netns'])).toMatch(/✓ slirp4netns: slirp4netns version /);
      // No sandbox wanted: nothing to say about its network.
      expect(await installWith(['tmux'], ['--without-sandbox'])).not.toContain('slirp4netns');
    },
  );
});
