import { afterEach, describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import type { AttachedCli } from '../support/pty-client.js';
import { BASH, hangar, tmux } from '../support/processes.js';

/**
 * Screen truth: what a client shows (its received bytes rendered by a headless xterm) must equal
 * what tmux holds (`capture-pane -p`), after full-screen programs and after a dropped link.
 */
describe('resume and screen truth', () => {
  // One host for these, each on a session of its own: after each test its attach commands are
  // closed, its session killed and the proxy passes everything again. The case that restarts the
  // agent with a 1 s replay window runs last.
  const box = usePairedHost({ viaProxy: true, shared: true });
  const proxy = () => box.proxy!;
  afterEach(async () => {
    proxy().setRefusing(false);
    proxy().setBlackhole(false);
    await box.closeClients();
    await box.killSessions();
  });

  const start = async (
    name: string,
    command: string[],
    size = { cols: 100, rows: 30 },
    env: Record<string, string> = {},
  ) => {
    const created = await hangar(box.home, ['session', 'new', 'box', '--name', name, ...command]);
    expect(created.stderr).toBe('');
    return box.attach(name, size, env);
  };

  const paneText = async (name: string) =>
    (await tmux(box.dataDir, ['capture-pane', '-p', '-t', `hangar-${name}`])).split('\n').map((l) => l.trimEnd());

  /** Waits until the client's screen equals tmux's pane, line for line. */
  const expectSameScreen = async (client: AttachedCli, name: string, timeoutMs = 5000) => {
    const deadline = Date.now() + timeoutMs;
    let seen: string[] = [];
    let truth: string[] = [];
    while (Date.now() < deadline) {
      seen = (await client.text()).map((l) => l.trimEnd());
      truth = await paneText(name);
      while (truth.length > seen.length) truth.pop();
      while (truth.length < seen.length) truth.push('');
      if (seen.join('\n') === truth.join('\n')) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen).toEqual(truth);
  };

  it('full-screen programs (vim, top) render exactly as tmux holds them', async () => {
    const client = await start('fullscreen', BASH);
    await client.waitForText('$');
    client.type('vim -u NONE -N\r');
    await client.waitForText('~');
    client.type('iHangar screen truth\x1b:set number\r');
    await client.waitForText('1 Hangar screen truth');
    await expectSameScreen(client, 'fullscreen');
    client.type(':q!\r');
    await client.waitForText('$');
    client.type('top -d 60\r');
    await client.waitForText(/load average/);
    await expectSameScreen(client, 'fullscreen');
    client.type('q');
    await expectSameScreen(client, 'fullscreen');
  });

  it('a link dropped mid-flood resumes with exactly the missing bytes and the same screen', async () => {
    const client = await start('flood', BASH);
    await client.waitForText('$');
    client.type('seq 1 300000; echo flood-finished\r');
    await client.waitForText(/^\d{3,}$/m);
    proxy().cutAll();
    await client.waitForText(/^flood-finished$/m, 20_000);
    await expectSameScreen(client, 'flood');
    client.type('echo after-resume\r');
    await client.waitForText(/^after-resume$/m);
    await expectSameScreen(client, 'flood');
  });

  it('a link that carries nothing is noticed within 10 s, shown as reconnecting, and repaired', async () => {
    const client = await start('stall', BASH);
    await client.waitForText('$');
    proxy().setBlackhole(true);
    const began = Date.now();
    await client.waitForText('reconnecting…', 12_000);
    expect(Date.now() - began).toBeLessThan(10_500);
    proxy().setBlackhole(false);
    client.type('echo repaired\r');
    await client.waitForText(/^repaired$/m, 15_000);
    await expectSameScreen(client, 'stall');
  });

  it('nothing typed crosses the wire in clear text', async () => {
    const from = proxy().capturedBytes.length; // what earlier tests sent is not this test's
    const client = await start('secret', BASH);
    await client.waitForText('$');
    const marker = 'SUPERSECRETMARKER';
    client.type(`echo ${marker}\r`);
    await client.waitForText(new RegExp(`^${marker}$`, 'm'));
    const wire = proxy().capturedBytes.subarray(from);
    expect(wire.length).toBeGreaterThan(1000);
    expect(wire.includes(Buffer.from(marker))).toBe(false);
    expect(wire.includes(Buffer.from('echo'))).toBe(false);
  });

  it('after the replay window the client says output was skipped and shows the current screen', async () => {
    await box.restartAgent({ replayWindowSeconds: 1 });
    // On the link's stream: once on a lane (the first pause in typing), the host keeps none of the
    // output for replay and says the same whatever the window (attach-lane.test.ts).
    const client = await start('late', BASH, undefined, { HANGAR_LANES: 'off' });
    await client.waitForText('$');
    client.type('echo before-gap\r');
    await client.waitForText(/^before-gap$/m);
    proxy().setRefusing(true);
    proxy().cutAll();
    await client.waitForText('reconnecting…');
    await tmux(box.dataDir, ['send-keys', '-t', 'hangar-late', 'echo written-while-away', 'Enter']);
    await new Promise((r) => setTimeout(r, 2500));
    proxy().setRefusing(false);
    await client.waitForText('output while you were away was skipped', 15_000);
    await client.waitForText(/^written-while-away$/m);
    client.type('echo after-gap\r');
    await client.waitForText(/^after-gap$/m);
    await expectSameScreen(client, 'late', 8000);
  });
});
