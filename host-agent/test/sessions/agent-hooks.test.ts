import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { removeDir, tempDir } from '../../../test/support/processes.js';
import { hookSettings, isClaudeCode, parseHookLine, withHookSettings } from '../../src/sessions/agent-hooks.js';

interface Settings {
  hooks: Record<string, { matcher?: string; hooks: { type: string; command: string }[] }[]>;
}

describe('Claude Code hooks of a session', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach(removeDir));

  it('append one short line per event, even to a path full of shell metacharacters', () => {
    const dir = tempDir('hooks');
    dirs.push(dir);
    const odd = join(dir, `it's $HOME; \`touch pwned\` "x"`);
    mkdirSync(odd);
    const events = join(odd, 'agent-events');
    writeFileSync(events, '');
    const settings = JSON.parse(hookSettings('fix-1', events)) as Settings;
    const payload = (event: string, extra: object) =>
      JSON.stringify({ session_id: 's', cwd: dir, hook_event_name: event, ...extra });
    for (const [event, extra] of [
      ['SessionStart', { source: 'startup' }],
      ['PostToolUse', { tool_name: 'Read', tool_response: { content: 'y'.repeat(300_000) } }],
      [
        'Notification',
        { message: 'Claude needs your permission to use Bash\nnow', notification_type: 'permission_prompt' },
      ],
    ] as const) {
      for (const group of settings.hooks[event]!) {
        for (const hook of group.hooks) {
          execFileSync('sh', ['-c', hook.command], { input: payload(event, extra), cwd: dir });
        }
      }
    }
    const lines = readFileSync(events, 'utf8').split('\n').filter(Boolean);
    expect(lines.slice(0, 2)).toEqual(['fix-1 SessionStart', 'fix-1 PostToolUse']);
    expect(lines).toHaveLength(3);
    expect(lines[2]!.length).toBeLessThan(4200);
    expect(parseHookLine(lines[2]!, 7)).toEqual({
      session: 'fix-1',
      status: {
        kind: 'claude-code',
        state: 'waiting_input',
        since: 7,
        detail: 'Claude needs your permission to use Bash\nnow',
      },
      event: 'Notification',
    });
    expect(() => readFileSync(join(dir, 'pwned'))).toThrow();
  });

  it('are read strictly: foreign names, unknown events and notifications that ask nothing change nothing', () => {
    expect(parseHookLine('../etc Stop', 1)).toBeUndefined();
    expect(parseHookLine('fix Teleport', 1)).toBeUndefined();
    expect(parseHookLine('fix Notification {"notification_type":"auth_success","message":"ok"}', 1)).toBeUndefined();
    expect(parseHookLine('fix Notification not json at all', 1)).toBeUndefined();
    expect(parseHookLine('fix Stop', 1)?.status.state).toBe('idle');
    expect(parseHookLine('fix UserPromptSubmit', 1)?.status.state).toBe('running');
    // Cut at 4 KiB in the middle of the message: still the agent's words, as far as they go.
    const cut = parseHookLine(
      'fix Notification {"notification_type":"elicitation_dialog","message":"Which branch sho',
      1,
    );
    expect(cut?.status).toMatchObject({ state: 'waiting_input', detail: 'Which branch sho' });
  });

  it('are wired only for Claude Code, in front of its own arguments', () => {
    expect(isClaudeCode(['claude'])).toBe(true);
    expect(isClaudeCode(['/opt/homebrew/bin/claude', '--resume'])).toBe(true);
    expect(isClaudeCode(['bash'])).toBe(false);
    expect(isClaudeCode(['claude-squad'])).toBe(false);
    expect(withHookSettings(['claude', 'fix it'], '/d/s.json')).toEqual([
      'claude',
      '--settings',
      '/d/s.json',
      'fix it',
    ]);
  });
});
