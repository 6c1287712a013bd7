import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { nodePlatform } from '../../src/platform.js';
import { ROOT, removeDir, tempDir } from '../../../../test/support/processes.js';

/**
 * Stand-ins for notify-send and osascript (test/fixtures/notify/): neither a notification daemon
 * nor macOS runs here. They parse argv as the real tools document it and record what they would
 * show, so a test sees whether a host's text stayed text.
 */
const STANDINS = join(ROOT, 'test', 'fixtures', 'notify');

/** Text a host controls (a job's command, a session name): options, quotes, AppleScript. */
const HOST_TITLE = `-edo shell script "touch /tmp/hangar-pwned" & "it's"`;
const HOST_BODY = `--urgency=critical -u low 'single' "double" \\ ;`;

interface Recorded {
  command: string;
  /** The tool refused its argv (as the real one would, with status 1). */
  error?: string;
  summary?: string;
  body?: string;
  statements?: string[];
  argv?: string[];
}

async function recorded(log: string): Promise<Recorded> {
  const deadline = Date.now() + 10_000;
  while (!existsSync(log) || !readFileSync(log, 'utf8').endsWith('\n')) {
    if (Date.now() > deadline) throw new Error('the notifier stand-in recorded nothing in 10 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  expect(lines).toHaveLength(1);
  const shown = JSON.parse(lines[0]!) as Recorded;
  if (shown.error) throw new Error(`${shown.command} refused its arguments: ${shown.error}`);
  return shown;
}

describe('desktop notifications in web mode show a host’s text as text', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach(removeDir));

  const platformFor = (os: NodeJS.Platform) => {
    const dir = tempDir('notify');
    dirs.push(dir);
    const log = join(dir, 'shown.jsonl');
    const env = { ...process.env, PATH: `${STANDINS}:${process.env['PATH']}`, NOTIFY_STANDIN_LOG: log };
    return { platform: nodePlatform(pino({ level: 'silent' }), { os, env }), log };
  };

  it('notify-send (Linux) gets a title starting with "-" as the summary, not as options', async () => {
    const { platform, log } = platformFor('linux');
    platform.showNotification({ title: HOST_TITLE, body: HOST_BODY });
    const shown = await recorded(log);
    expect(shown).toMatchObject({ command: 'notify-send', summary: HOST_TITLE, body: HOST_BODY });
  });

  it('osascript (macOS) runs only its own script, with the title and body as its argv', async () => {
    const { platform, log } = platformFor('darwin');
    platform.showNotification({ title: HOST_TITLE, body: HOST_BODY });
    const shown = await recorded(log);
    expect(shown.command).toBe('osascript');
    expect(shown.statements).toHaveLength(1);
    expect(shown.statements![0]).toMatch(/^on run argv\ndisplay notification \(item 2 of argv\)/);
    expect(shown.argv).toEqual([HOST_TITLE, HOST_BODY]);
  });
});
