import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  GitRef,
  HOST_PROCEDURES,
  MAX_AGENT_COMMAND_BYTES,
  MAX_PROMPT_BYTES,
  NewTaskSpec,
  TaskSpec,
  taskSessionName,
} from '@hangar/shared';

/** The first problem zod finds, as `path: message`. */
function problem(input: unknown): string {
  const parsed = NewTaskSpec.safeParse(input);
  if (parsed.success) return 'accepted';
  const issue = parsed.error.issues[0]!;
  return `${issue.path.join('.')}: ${issue.message}`;
}

describe('a task spec', () => {
  it('takes a prompt alone, with claude, no needs and any runner by default', () => {
    expect(TaskSpec.parse({ prompt: 'fix the flaky test' })).toEqual({
      prompt: 'fix the flaky test',
      agent: ['claude'],
      needs: [],
      runner: 'any',
    });
  });

  it('names the field it refuses and says what it expected', () => {
    expect(problem({ prompt: '' })).toBe('prompt: the prompt is empty: say what the agent should do');
    expect(problem({ prompt: '  \n' })).toBe('prompt: the prompt is only blanks: say what the agent should do');
    expect(problem({ prompt: 'x'.repeat(64 * 1024 + 1) })).toMatch(/^prompt: /);
    // Bytes, not characters: é is two.
    expect(problem({ prompt: 'é'.repeat(MAX_PROMPT_BYTES / 2) })).toBe('accepted');
    expect(problem({ prompt: `${'é'.repeat(MAX_PROMPT_BYTES / 2)}x` })).toBe(
      "prompt: the prompt is over 6 KiB: put the long part in a file in the task's directory and name it in the prompt",
    );
    // More characters than the bound: the same words, not zod's generic "Too big".
    expect(problem({ prompt: 'x'.repeat(MAX_PROMPT_BYTES + 1) })).toBe(
      "prompt: the prompt is over 6 KiB: put the long part in a file in the task's directory and name it in the prompt",
    );
    expect(problem({ prompt: 'a\0b' })).toMatch(/^prompt: may not contain a NUL byte/);
    expect(problem({ prompt: 'go', cwd: 'src/app' })).toBe(
      'cwd: expected an absolute directory on the host, or one starting with ~/',
    );
    expect(problem({ prompt: 'go', agent: [] })).toBe('agent: the agent command is empty');
    expect(problem({ prompt: 'go', agent: Array(65).fill('x') })).toBe('agent: at most 64 agent arguments');
    expect(problem({ prompt: 'go', needs: ['os:windows'] })).toMatch(/^needs\.0: expected a need like os:linux/);
    expect(problem({ prompt: 'go', needs: ['rm -rf'] })).toMatch(/^needs\.0: expected a need like/);
    expect(problem({ prompt: 'go', runner: 'cloud' })).toBe(
      'runner: unknown runner "cloud": expected any, user or service',
    );
    expect(problem({ prompt: 'go', runner: 'action' })).toMatch(/^runner: runner "action": Hangar has no CI runners/);
    expect(problem({ prompt: 'go', budget: 5 })).toMatch(/budget/);
  });

  it('is bounded as a whole: each field in bytes, named when over (a spec of 1.5 MiB of JSON was taken)', () => {
    // 64 arguments of 4096 control characters: each allowed alone, 1.5 MiB of JSON together.
    const agent = Array<string>(64).fill('\x01'.repeat(4096));
    expect(JSON.stringify({ prompt: 'go', agent }).length).toBeGreaterThan(1.5 * 1024 * 1024);
    expect(problem({ prompt: 'go', agent })).toBe(
      `agent: the agent command is ${64 * 4097} bytes (UTF-8), at most ${MAX_AGENT_COMMAND_BYTES}: tmux takes a session's whole command line in one 16 KiB message; put long options in a file the agent reads`,
    );
    expect(problem({ prompt: 'go', agent: ['claude', 'x'.repeat(4097)] })).toBe(
      'agent.1: an agent argument is at most 4096 characters',
    );
    expect(problem({ prompt: 'go', agent: ['codex', 'é'.repeat(2000)] })).toBe('accepted');
    // A directory is a path: PATH_MAX bytes, not characters.
    expect(problem({ prompt: 'go', cwd: `/${'é'.repeat(2048)}` })).toBe(
      'cwd: the cwd is over 4096 bytes (UTF-8), more than a path on the host may be',
    );
    expect(problem({ prompt: 'go', repo: `/${'x'.repeat(4096)}` })).toBe(
      'repo: the repo is over 4096 bytes (UTF-8), more than a path on the host may be',
    );
    // The largest spec each field allows is some 17 KiB.
    const largest = {
      prompt: 'x'.repeat(MAX_PROMPT_BYTES),
      repo: `/${'x'.repeat(4095)}`,
      ref: 'r'.repeat(256),
      agent: ['claude', 'y'.repeat(MAX_AGENT_COMMAND_BYTES - 8)],
      needs: Array.from({ length: 32 }, (_, i) => `n${i}`.padEnd(64, 'z')),
    };
    expect(problem(largest)).toBe('accepted');
    expect(JSON.stringify(largest).length).toBeLessThan(20 * 1024);
    // What is stored or listed reads as before: a task taken before these bounds still reads.
    expect(TaskSpec.safeParse({ prompt: 'go', agent }).success).toBe(true);
  });

  it('accepts the needs it documents', () => {
    const needs = ['os:linux', 'os:macos', 'arch:arm64', 'label:gpu', 'claude', 'docker-compose'];
    expect(TaskSpec.parse({ prompt: 'go', needs }).needs).toEqual(needs);
  });

  it('runs in a session named after its id, which a session name accepts', () => {
    expect(taskSessionName('t-0123456789abcdef')).toBe('task-01234567');
    expect(Object.keys(HOST_PROCEDURES)).toEqual(
      expect.arrayContaining(['task.claim', 'task.list', 'task.get', 'task.cancel']),
    );
  });

  it('takes a ref as git check-ref-format does, and never one starting with "-"', () => {
    const refs = [
      'main',
      'feature/x',
      'v1.2.3',
      'a1b2c3d',
      'release-2026',
      'a..b',
      'a b',
      'x~1',
      'HEAD^',
      'a:b',
      'a?',
      'a*',
      'a[b',
      'a\\b',
      'a@{1}',
      '@',
      'a//b',
      '/a',
      'a/',
      'a.',
      '.a',
      'a/.b',
      'a.lock',
      'a/b.lock/c',
      'a\tb',
    ];
    for (const ref of refs) {
      const git = spawnSync('git', ['check-ref-format', '--allow-onelevel', ref]).status === 0;
      expect({ ref, valid: GitRef.safeParse(ref).success }).toEqual({ ref, valid: git });
    }
    for (const ref of ['-x', '--upload-pack=touch /tmp/x', '-']) {
      expect(GitRef.safeParse(ref).error?.issues[0]?.message).toMatch(/^a ref may not start with "-"/);
    }
  });

  it('has a repo or a cwd, not both, and a ref only with a repo', () => {
    expect(TaskSpec.parse({ prompt: 'go', repo: '~/src/app', ref: 'main' })).toMatchObject({
      repo: '~/src/app',
      ref: 'main',
    });
    expect(problem({ prompt: 'go', repo: 'src/app' })).toBe(
      'repo: expected an absolute directory on the host, or one starting with ~/',
    );
    expect(problem({ prompt: 'go', repo: '/r', cwd: '/r' })).toMatch(/^repo: give cwd or repo, not both/);
    expect(problem({ prompt: 'go', ref: 'main' })).toMatch(/^ref: a ref needs a repo/);
    expect(problem({ prompt: 'go', repo: '/r', ref: '-x' })).toMatch(/^ref: a ref may not start with "-"/);
  });
});
