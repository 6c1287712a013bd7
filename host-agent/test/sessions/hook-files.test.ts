import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SessionCreateParams } from '@hangar/shared';
import { useCleanups } from '../../../test/support/cleanups.js';
import { useTestHost, waitFor, type TestHost } from './fixture.js';

let host: TestHost;
useTestHost((started) => (host = started));
const cleanups = useCleanups();

/**
 * The files tmux's hooks and a coding agent's hooks write to (sessions/changed, bells,
 * agent-events) are made or emptied by the agent when it starts: through a symlink planted at one
 * of them, that emptied the file it points to, wherever it is (outside the data dir too).
 */
describe('the hook files of the sessions folder', () => {
  it.each(['changed', 'bells', 'agent-events'])(
    'a symlink planted at sessions/%s is not followed: the file it points to is left as it was, sessions still work',
    async (name) => {
      const outside = await mkdtemp(join(tmpdir(), 'hangar-hook-files-outside-'));
      cleanups.push(() => rm(outside, { recursive: true, force: true }));
      const victim = join(outside, 'precious');
      await writeFile(victim, "not the agent's\n");
      await mkdir(join(host.dataDir, 'sessions'), { recursive: true, mode: 0o700 });
      await symlink(victim, join(host.dataDir, 'sessions', name));

      const sessions = await host.start();
      const made = SessionCreateParams.parse({ name: 'still', command: ['sleep', '60'], cwd: host.dataDir });
      await sessions.create(made);
      await waitFor(async () => (await sessions.list()).some((s) => s.name === 'still'), 'the session listed');
      expect(await readFile(victim, 'utf8')).toBe("not the agent's\n");
    },
  );
});
