import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFailed } from 'vitest';
import { AttachedCli } from '../support/pty-client.js';
import {
  BASH,
  endAgent,
  hangar,
  pairWith,
  removeDir,
  startAgentProcess,
  tempDir,
  type AgentProcess,
} from '../support/processes.js';
import { startServingCli, type ServingCli } from '../support/serving-cli.js';
import { useCleanups } from '../support/cleanups.js';

const UI_ADDRESS = /Hangar UI at (\S+)/;
const MOVED = "the terminal moved onto this command's own link";
const ON_LANE = 'keys and output go over a lane beside the link';
const LEAVE_SCREEN = '\x1b[?1049l';

/**
 * Issue 17: with the app running, `hangar attach` gets its first screen through the running
 * core's door, then moves the terminal onto a link of its own to the host (resuming the same
 * attachment from the next byte it lacks), so a keystroke no longer crosses the core.
 */
describe('hangar attach with the app running', () => {
  const cleanups = useCleanups();

  /**
   * An agent paired with a home whose app (`hangar ui`) is running, a bash session "work" on it,
   * and `hangar attach box work` at its first prompt. HANGAR_DEBUG: the command says (on the
   * terminal) which core answered and when it moved.
   */
  async function attachedWithAppRunning(
    name: string,
    beforeAttach?: (home: string) => Record<string, string> | void,
    untilPrompt = true,
  ): Promise<{ ui: ServingCli; client: AttachedCli }> {
    const home = tempDir(name);
    cleanups.push(() => removeDir(home));
    const dataDir = tempDir(`${name}-agent`);
    const agent: AgentProcess = await startAgentProcess(dataDir);
    cleanups.push(() => endAgent(agent, dataDir));
    const ui = await startServingCli(home, ['ui'], UI_ADDRESS);
    cleanups.push(() => ui.stop());
    await pairWith(home, 'box', agent);
    const created = await hangar(home, ['session', 'new', 'box', '--name', 'work', ...BASH]);
    expect(created.code, created.stderr).toBe(0);
    const env = beforeAttach?.(home) ?? {};
    const client = new AttachedCli(home, ['box', 'work'], undefined, { HANGAR_DEBUG: '1', ...env });
    cleanups.push(() => client[Symbol.asyncDispose]());
    // HANGAR_TEST_RAW_DIR: a failing run leaves there the bytes `hangar attach` wrote to its
    // terminal (to read what the screen model was given).
    const rawDir = process.env['HANGAR_TEST_RAW_DIR'];
    if (rawDir) {
      onTestFailed(() => writeFileSync(join(rawDir, `${name}-${process.pid}-${Date.now()}.raw`), client.raw));
    }
    if (untilPrompt) await client.waitForText('$ ');
    return { ui, client };
  }

  it('moves its terminal onto a link of its own: keys typed before, during and after arrive once and in order, and it outlives the running core', async () => {
    const { ui, client } = await attachedWithAppRunning('handover');
    expect(client.raw).toContain('using the Hangar core running on this computer');
    // Typed at once, one key at a time with short pauses: the first keys go through the running
    // core, the move happens in one of the pauses, keys typed while it is under way wait for it.
    const typed = 'echo k' + 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(2);
    for (const key of typed) {
      client.type(key);
      await new Promise((resolve) => setTimeout(resolve, 15 + Math.random() * 120));
    }
    client.type('\r');
    const line = typed.slice('echo '.length);
    await client.waitForText(new RegExp(`^${line}$`, 'm'), 20_000);
    // Said once moved (not required here: what counts is that the terminal outlives the core below).
    const deadline = Date.now() + 10_000;
    while (!client.raw.includes(MOVED) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    client.type('echo after-$((6*7))\r');
    await client.waitForText(/^after-42$/m);
    // On its own link it then moves onto a lane in a pause in typing (lane/PROTOCOL.md).
    const onLane = Date.now() + 10_000;
    while (!client.raw.includes(ON_LANE) && Date.now() < onLane) await new Promise((r) => setTimeout(r, 25));
    expect(client.raw).toContain(ON_LANE);

    // The running core goes away: the terminal is no longer its. (Kept on the core, the terminal
    // ends here; a core whose own terminal outlived the move would detach the attachment now.)
    await ui.stop();
    client.type('echo alone-$((6*7))\r');
    await client.waitForText(/^alone-42$/m);
    const lines = await client.text();
    // The command line whole (a notice written across it would split it) and each answer once
    // (nothing replayed twice across the move), in order.
    expect(lines).toContain(`$ ${typed}`);
    expect(lines.filter((l) => l === line || /^(after|alone)-42$/.test(l))).toEqual([line, 'after-42', 'alone-42']);
    expect(client.raw.split(line).length - 1).toBeGreaterThanOrEqual(1);

    client.type('\x1d');
    expect(await client.waitForExit()).toBe(0);
  });

  it("stays on the running core when the command's own core cannot open (the device key unreadable)", async () => {
    // The app read the key when it started; the command's own core reads it again and fails.
    const { client } = await attachedWithAppRunning('handover-no-core', (home) =>
      writeFileSync(join(home, 'device_ed25519.pem'), 'not a key\n'),
    );
    const deadline = Date.now() + 20_000;
    while (!client.raw.includes('the terminal stays on the running core') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 25));
    expect(client.raw).toContain('the terminal stays on the running core');
    expect(client.raw).not.toContain(MOVED);
    client.type('echo stayed-$((6*7))\r');
    await client.waitForText(/^stayed-42$/m);
    client.type('\x1d');
    expect(await client.waitForExit()).toBe(0);
  });

  it('a move that fails after its own core opened gives the terminal back and says what happened, not an unhandled rejection', async () => {
    // A preload in the command's process: once its own core opened, the move's next step (reading
    // the terminal's size) throws, as any later step of the move could.
    const { client } = await attachedWithAppRunning(
      'handover-fails',
      (home) => {
        const preload = join(home, 'fail-move.cjs');
        writeFileSync(
          preload,
          `let columns = process.stdout.columns;
Object.defineProperty(process.stdout, 'columns', {
  configurable: true,
  get() {
    if (/at moveToOwnLink/.test(new Error().stack)) throw new Error('move-fault-17');
    return columns;
  },
  set(value) { columns = value; },
});
`,
        );
        return { NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --require ${preload}`.trim() };
      },
      false,
    );
    const code = await client.waitForExit(30_000);
    expect(code).not.toBe(0);
    const at = client.raw.lastIndexOf(LEAVE_SCREEN);
    expect(at).toBeGreaterThanOrEqual(0);
    const after = client.raw.slice(at);
    // After the screen was given back: what failed, that the session runs on, and how to get back.
    expect(after).toMatch(/move-fault-17/);
    expect(after).toMatch(/the session keeps running/);
    expect(after).toMatch(/hangar attach box work/);
    expect(client.raw).not.toMatch(/\n\s+at |Node\.js v\d/);
  });

  it('says it moved (HANGAR_DEBUG) without breaking the screen: the notice leaves the cursor where it was', async () => {
    const { client } = await attachedWithAppRunning('handover-notice');
    // Nothing typed: the move comes (about a second in, its own core opening) while the cursor sits
    // after the prompt. A notice written there as a line of its own moved the cursor under tmux's
    // feet and what tmux drew next went a row lower: the prompt and the command line came apart
    // (in the test above, when the move came right after 'echo ', the command's tail made a line
    // like the answer's, and the answer was seen twice).
    const deadline = Date.now() + 20_000;
    while (!client.raw.includes(MOVED) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    expect(client.raw).toContain(MOVED);
    client.type('echo notice-$((6*7))\r');
    await client.waitForText(/^notice-42$/m);
    const lines = await client.text();
    expect(lines).toContain('$ echo notice-$((6*7))');
    expect(lines.filter((l) => l.startsWith('$ ') || l === 'notice-42')).toEqual([
      '$ echo notice-$((6*7))',
      'notice-42',
      '$ ',
    ]);
    // Every line hangar wrote while attached went the same way, whenever it came: among them the
    // core's own HANGAR_DEBUG line about its code cache, written when the core is loaded for the
    // move. Written as a line after the prompt it split a command line typed across it, on a busy
    // machine (where it came after the first screen; before it, tmux's first screen covered it).
    expect(linesAcrossTheScreen(client.raw, 100)).toEqual([]);
    expect(client.raw).toContain('hangar: code cache');

    client.type('\x1d');
    expect(await client.waitForExit()).toBe(0);
  });
});

/**
 * What `hangar attach` (the lines starting "hangar: ") wrote while attached (once it said which
 * core answered: the terminal is the session's from then on) other than as a notice on the bottom
 * row (30 of the test's 30 rows) that fits in it and puts the cursor back. (Whether such a line
 * splits what is on the screen depends on whether tmux's first screen came before it.)
 */
function linesAcrossTheScreen(raw: string, cols: number): string[] {
  const attached = raw.indexOf('\n', raw.indexOf('hangar: using the Hangar core running on this computer'));
  expect(attached).toBeGreaterThanOrEqual(0);
  const before = '\x1b7\x1b[30;1H\x1b[7m\x1b[2K';
  const after = '\x1b[0m\x1b8';
  const wrong: string[] = [];
  for (let at = raw.indexOf('hangar: ', attached); at >= 0; at = raw.indexOf('hangar: ', at + 1)) {
    const end = raw.indexOf(after, at);
    const text = raw.slice(at, end < 0 ? undefined : end);
    if (!raw.startsWith(before, at - before.length) || end < 0 || /[\r\n\x1b]/.test(text) || text.length >= cols)
      wrong.push(raw.slice(at, at + 120));
  }
  return wrong;
}
