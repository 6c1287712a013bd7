import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BASH, HANGAR_BIN, hangar, killTmuxServer, removeDir, tempDir } from '../support/processes.js';

/** `npm start` runs `hangar up`: an embedded agent for this machine, paired as host "local". */
describe('the local stack (npm start)', () => {
  let home: string | undefined;
  let up: ChildProcess | undefined;

  const startUp = async (dir: string) => {
    const child = spawn(process.execPath, [HANGAR_BIN, 'up'], {
      env: { ...process.env, HANGAR_HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`hangar up did not come up: ${out}`)), 20_000);
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('local stack up')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`hangar up exited with ${code}: ${out}`)));
    });
    return child;
  };

  const stopUp = async (child: ChildProcess) => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    return exited;
  };

  afterEach(async () => {
    if (up && up.exitCode === null) await stopUp(up);
    if (home) {
      await killTmuxServer(join(home, 'agent'));
      removeDir(home);
    }
  });

  it('pairs this machine as "local" once, and sessions outlive the stack', async () => {
    home = tempDir('up');
    up = await startUp(home);
    const hosts = JSON.parse((await hangar(home, ['hosts', 'ls', '--json'])).stdout) as {
      name: string;
      embedded: boolean;
      added_at: number;
    }[];
    expect(hosts).toEqual([expect.objectContaining({ name: 'local', embedded: true })]);
    const created = await hangar(home, ['session', 'new', 'local', '--name', 'work', ...BASH]);
    expect(created.stderr).toBe('');

    expect(await stopUp(up)).toBe(0);
    up = await startUp(home);
    const again = JSON.parse((await hangar(home, ['hosts', 'ls', '--json'])).stdout) as { added_at: number }[];
    expect(again[0]!.added_at).toBe(hosts[0]!.added_at);
    const listed = JSON.parse((await hangar(home, ['session', 'ls', 'local', '--json'])).stdout);
    expect(listed[0].sessions).toEqual([expect.objectContaining({ name: 'work', alive: true })]);
  });

  it('says what to do when the local stack is not running', async () => {
    home = tempDir('up');
    up = await startUp(home);
    expect(await stopUp(up)).toBe(0);
    const refused = await hangar(home, ['session', 'ls', 'local']);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/npm start/);
  });
});
