import { describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { hangar } from '../support/processes.js';

/**
 * A host's text reaches the user's terminal through many commands (a job's or a session's
 * command, error messages quoting a path). A host that holds escape sequences there must not be
 * able to write the clipboard (OSC 52), clear the screen or set the window title.
 */
const HOSTILE = '\x1b]52;c;ZWNobyBvd25lZA==\x07\x1b[2J\x1b]0;owned\x07\u009b31m';
const SHOWN = '\\x1b]52;c;ZWNobyBvd25lZA==\\x07\\x1b[2J\\x1b]0;owned\\x07\\x9b31m';

/** Anything a terminal would act on rather than print; only the line breaks of our own output pass. */
function expectNothingActedOn(text: string): void {
  const acted = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.exec(text);
  expect(acted, `a control character reached the terminal in ${JSON.stringify(text)}`).toBeNull();
}

describe('text from a host cannot drive your terminal', () => {
  // One host for the three: each looks at what its own command printed (a job, a session, a refusal).
  const box = usePairedHost({ shared: true });
  const newSession = (name: string, ...args: string[]) =>
    hangar(box.home, ['session', 'new', 'box', '--name', name, ...args]);

  it('a job command holding escape sequences is shown, not obeyed, by run, jobs and jobs show', async () => {
    const ran = await hangar(box.home, ['run', '--host', 'box', '--executor', 'shell', '-c', `true # ${HOSTILE}`]);
    expect(ran.code).toBe(0);
    expect(ran.stderr).toContain(SHOWN);
    expectNothingActedOn(ran.stderr);
    expectNothingActedOn(ran.stdout);
    const id = /job (j-[a-z0-9]+)/.exec(ran.stderr)![1]!;

    const listed = await hangar(box.home, ['jobs']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('\\x1b]52;c;');
    expectNothingActedOn(listed.stdout);

    const shown = await hangar(box.home, ['jobs', 'show', id]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`command   true # ${SHOWN}`);
    expectNothingActedOn(shown.stdout);

    // --json is for programs: the command is there exactly, JSON-escaped.
    const json = await hangar(box.home, ['jobs', 'show', id, '--json']);
    expect((JSON.parse(json.stdout) as { command: string }).command).toBe(`true # ${HOSTILE}`);
    expectNothingActedOn(json.stdout);
  });

  it('a session command holding escape sequences is shown, not obeyed, by session ls', async () => {
    const created = await newSession('ctl', '--', 'sh', '-c', 'sleep 300', HOSTILE);
    expect(created.code).toBe(0);
    const listed = await hangar(box.home, ['session', 'ls']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(`sh -c sleep 300 ${SHOWN}`);
    expectNothingActedOn(listed.stdout);
  });

  it('an error message quoting host text shows its escape sequences', async () => {
    const refused = await newSession('nowhere', '--cwd', `/nonexistent/${HOSTILE}`);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`/nonexistent/${SHOWN}`);
    expect(refused.stderr).toContain('does not exist');
    expectNothingActedOn(refused.stderr);
  });
});
