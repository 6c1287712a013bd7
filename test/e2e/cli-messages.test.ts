import { describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { hangar } from '../support/processes.js';

/** What `hangar` tells a user when something is not there or did not work: the truth, and what to run. */
describe('CLI messages', () => {
  // One host for these: the jobs of the first are no sessions (the second counts those), and the
  // last one kills the agent, so it stays last.
  const box = usePairedHost({ shared: true });

  it('jobs show says which network a job asked for: none or host; nothing for the default', async () => {
    for (const [network, note] of [
      ['host', 'executor  shell, host network\n'],
      ['none', 'executor  shell, no network\n'],
      ['outbound', 'executor  shell\n'],
    ] as const) {
      const ran = await hangar(box.home, [
        'run',
        '--host',
        'box',
        '--executor',
        'shell',
        '--network',
        network,
        '--no-workspace',
        '--detach',
        '-c',
        'true',
      ]);
      expect(ran.code, ran.stderr).toBe(0);
      const shown = await hangar(box.home, ['jobs', 'show', ran.stdout.trim(), '--host', 'box']);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toContain(note);
    }
  });

  it('a session whose program is not there is refused, saying so, and nothing is created', async () => {
    for (const [name, program, why] of [
      ['gone', '/bin/nonexistent', 'no such file'],
      ['gone2', 'hangar-no-such-program', 'not found in PATH'],
    ] as const) {
      const created = await hangar(box.home, ['session', 'new', 'box', '--name', name, '--', program, '--flag']);
      expect(created.code).not.toBe(0);
      expect(created.stdout).toBe('');
      expect(created.stderr).toContain(`cannot run "${program}" on this host: ${why}`);
      expect(created.stderr).toContain('no session was created');
    }
    const listed = await hangar(box.home, ['session', 'ls', 'box', '--json']);
    expect((JSON.parse(listed.stdout) as { sessions: unknown[] }[])[0]!.sessions).toEqual([]);
  });

  it('a session that is not there is named with its host, and how to list what is there', async () => {
    const expected = 'no session named "nosuch" on host "box"; list its sessions with: hangar session ls box';
    const killed = await hangar(box.home, ['session', 'kill', 'box', 'nosuch']);
    expect(killed.code).not.toBe(0);
    expect(killed.stderr).toContain(expected);
    const attached = await hangar(box.home, ['attach', 'box', 'nosuch']);
    expect(attached.code).not.toBe(0);
    expect(attached.stderr).toContain(expected);
  });

  it('a job that no paired host has is named, with how to list the jobs there are', async () => {
    for (const args of [
      ['logs', 'j-00000000'],
      ['logs', '--follow', 'j-00000000'],
      ['jobs', 'show', 'j-00000000'],
    ]) {
      const result = await hangar(box.home, args);
      expect(result.code, `hangar ${args.join(' ')}: ${result.stderr}`).toBe(3);
      expect(result.stderr).toContain('no paired host has job j-00000000; list the jobs with: hangar jobs\n');
    }
  });

  it('with the only host unreachable, listings say so and do not claim there is nothing', async () => {
    await box.agent.stop('SIGKILL');
    for (const args of [['session', 'ls'], ['jobs'], ['preview', 'ls']]) {
      const listed = await hangar(box.home, args);
      expect(listed.code, `hangar ${args.join(' ')}: ${listed.stderr}`).toBe(5);
      expect(listed.stderr).toMatch(/^hangar: box: /m);
      expect(listed.stdout, `hangar ${args.join(' ')}`).not.toMatch(/^no /m);
    }
  });
});
