import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { ROOT, hangar, tempDir, removeDir } from '../support/processes.js';

/**
 * A session that runs Claude Code says what Claude is doing (working, needs you, idle) from
 * Claude's own hooks, wired for that session alone. Claude itself is test/fixtures/claude, a
 * stand-in that keeps the hooks contract (settings file shape, JSON on stdin, matchers).
 */
const STAND_IN_DIR = join(ROOT, 'test', 'fixtures', 'claude');

interface Listed {
  sessions: { name: string; agent: { state: string; detail: string | null; since: number } | null }[];
}

describe('sessions running Claude Code', () => {
  const host = usePairedHost();

  const agentOf = async (name: string) => {
    const listed = await hangar(host.home, ['session', 'ls', 'box', '--json']);
    const [box] = JSON.parse(listed.stdout) as Listed[];
    return box!.sessions.find((s) => s.name === name)?.agent;
  };
  const waitForState = async (name: string, state: string, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      last = await agentOf(name);
      if ((last as { state?: string } | undefined)?.state === state) return last as { detail: string | null };
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`session ${name} never reached ${state}; last: ${JSON.stringify(last)}`);
  };

  it('report working, needs you (in Claude’s words) and idle, and keep it across an agent restart', async () => {
    const home = tempDir('claude-home');
    try {
      // The user's own Claude settings are theirs: Hangar layers its hooks on with --settings.
      mkdirSync(join(home, '.claude'));
      const own = '{"theme": "dark", "hooks": {}}\n';
      writeFileSync(join(home, '.claude', 'settings.json'), own);
      const made = await hangar(host.home, [
        'session',
        'new',
        'box',
        '--name',
        'fix',
        // Found through the session's PATH, as `claude` is on a real host.
        '--env',
        `PATH=${STAND_IN_DIR}:${process.env['PATH']}`,
        '--env',
        `HOME=${home}`,
        '--',
        'claude',
      ]);
      expect(made.stderr).toBe('');
      await waitForState('fix', 'idle'); // SessionStart: ready for a prompt

      const terminal = host.attach('fix');
      await terminal.waitForText('>');
      terminal.type('please run bash\r');
      const asking = await waitForState('fix', 'waiting_input');
      expect(asking.detail).toBe('Claude needs your permission to use Bash');
      expect((await hangar(host.home, ['session', 'ls', 'box'])).stdout).toMatch(
        /^box\s+fix\s+claude\s.*\sneeds you$/m,
      );
      await terminal.waitForText('Allow Bash to run');

      terminal.type('y\r');
      await terminal.waitForText('Done.');
      await waitForState('fix', 'idle');

      await host.restartAgent();
      expect(await agentOf('fix')).toMatchObject({ state: 'idle', detail: null });
      expect(readFileSync(join(home, '.claude', 'settings.json'), 'utf8')).toBe(own);
    } finally {
      removeDir(home);
    }
  });

  it('a prompt given on the command line starts it working at once; other sessions have no agent status', async () => {
    await hangar(host.home, ['session', 'new', 'box', '--name', 'shell', '--', 'sh', '-c', 'sleep 30']);
    await hangar(host.home, [
      'session',
      'new',
      'box',
      '--name',
      'task',
      '--',
      join(STAND_IN_DIR, 'claude'),
      'fix the flaky test',
    ]);
    await waitForState('task', 'idle'); // worked on the prompt, then stopped
    const terminal = host.attach('task');
    await terminal.waitForText('Working on: fix the flaky test');
    expect(await agentOf('shell')).toBeNull();
  });

  it('a session given a PATH runs its command from that PATH (tmux alone would use the agent’s)', async () => {
    const bin = tempDir('bin');
    try {
      writeFileSync(join(bin, 'only-here'), '#!/bin/sh\necho "found only here"; sleep 30\n', { mode: 0o755 });
      await hangar(host.home, [
        'session',
        'new',
        'box',
        '--name',
        'path',
        '--env',
        `PATH=${bin}:/usr/bin:/bin`,
        '--',
        'only-here',
      ]);
      await host.attach('path').waitForText('found only here');
    } finally {
      removeDir(bin);
    }
  });
});
