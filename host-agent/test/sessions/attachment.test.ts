import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Terminal } from '@xterm/headless';
import { describe, expect, it } from 'vitest';
import { SessionCreateParams } from '@hangar/shared';
import type { Attachment, SessionManager } from '../../src/sessions/index.js';
import { bash, screenText, useTestHost, typeInto, waitFor, type TestHost } from './fixture.js';

let host: TestHost;
let sessions: SessionManager;
useTestHost((started) => (host = started));

async function shellSession(name: string, options: Parameters<TestHost['start']>[0] = {}): Promise<void> {
  sessions = await host.start(options);
  await sessions.create(SessionCreateParams.parse({ name, command: bash, cwd: host.dataDir, env: { PS1: 'ready$ ' } }));
}

const windowSize = async (name: string) =>
  (await host.tmux('display-message', '-p', '-t', `=hangar-${name}:`, '#{window_width}x#{window_height}')).trim();

/**
 * A terminal emulator showing an attachment: xterm.js, which answers tmux's queries on its own
 * (through onData, like typing). Its device attributes are answered as tmux answers them (what
 * `hangar attach` run inside tmux would send): tmux then lists the client with the RGB feature,
 * so a test can see the answer has reached tmux.
 */
function answeringTerminal(attachment: Attachment, size: { cols: number; rows: number }): Terminal {
  const terminal = new Terminal({ ...size, allowProposedApi: true });
  terminal.parser.registerCsiHandler({ prefix: '>', final: 'c' }, () => {
    terminal.input('\x1b[>84;0;0c', false);
    return true;
  });
  terminal.onData((data) => attachment.input(new TextEncoder().encode(data)));
  const held = attachment.readFrom(0);
  if (held) terminal.write(held);
  attachment.onOutput((chunk, offset) => {
    terminal.write(chunk);
    attachment.ack(offset + chunk.length);
  });
  return terminal;
}

const windowWidth = async (name: string) =>
  Number((await host.tmux('display-message', '-p', '-t', `=hangar-${name}:`, '#{window_width}')).trim());

describe('attachments', () => {
  it('a second client sees what the first typed', async () => {
    await shellSession('shared');
    const first = await sessions.attach('shared', { cols: 80, rows: 24 });
    const second = await sessions.attach('shared', { cols: 80, rows: 24 });
    const [screen1, screen2] = [screenText(first), screenText(second)];
    await waitFor(() => screen2.text().includes('ready$'), 'the prompt on the second client');
    typeInto(first, 'echo hello-$((6*7))\r');
    await waitFor(
      () => screen1.text().includes('hello-42') && screen2.text().includes('hello-42'),
      'the echo on both clients',
    );
    expect((await sessions.list())[0]!.attached_clients).toBe(2);
    expect(first.id).not.toBe(second.id);
    expect(first.id.length).toBeGreaterThanOrEqual(20);
  });

  it('the client that typed last drives the window size', async () => {
    await shellSession('sizes');
    const small = await sessions.attach('sizes', { cols: 70, rows: 20 });
    const large = await sessions.attach('sizes', { cols: 120, rows: 40 });
    screenText(small);
    screenText(large);
    typeInto(large, ' ');
    await waitFor(async () => (await windowWidth('sizes')) === 120, 'the large client to drive the size');
    typeInto(small, ' ');
    await waitFor(async () => (await windowWidth('sizes')) === 70, 'the small client to drive the size');
    small.resize(90, 30);
    typeInto(small, ' ');
    await waitFor(async () => (await windowWidth('sizes')) === 90, 'the resized client to drive the size');
  });

  it("a client whose terminal answers tmux's queries does not take the size from the one typing", async () => {
    await shellSession('answers');
    const typing = await sessions.attach('answers', { cols: 120, rows: 40 });
    const screen = screenText(typing);
    await waitFor(() => screen.text().includes('ready$'), 'the prompt');
    typeInto(typing, 'echo typed-$((6*7))\r');
    await waitFor(() => screen.text().includes('typed-42'), 'the echo');
    expect(await windowSize('answers')).toBe('120x40');

    const viewer = await sessions.attach('answers', { cols: 80, rows: 24 });
    answeringTerminal(viewer, { cols: 80, rows: 24 });
    const features = async () =>
      (await host.tmux('list-clients', '-t', '=hangar-answers', '-F', '#{client_width} #{client_termfeatures}'))
        .split('\n')
        .find((line) => line.startsWith('80 '));
    // The answer has reached tmux (a size hand-over would have come before it)...
    await waitFor(async () => (await features())?.includes('RGB') === true, "the viewer's answer to reach tmux");
    // ...and the window still has the typing client's size.
    expect(await windowSize('answers')).toBe('120x40');

    // Typing in the viewer still hands the size over.
    typeInto(viewer, ' ');
    await waitFor(async () => (await windowSize('answers')) === '80x24', 'the viewer to drive the size once it types');
  });

  it('a flood never grows the buffer past the window, and Ctrl-C still gets through', async () => {
    const liveWindowBytes = 64 * 1024;
    await shellSession('flood', { liveWindowBytes });
    const attachment = await sessions.attach('flood', { cols: 80, rows: 24 });
    let acking = false;
    const screen = screenText(attachment, { ack: false });
    attachment.onOutput((chunk, offset) => {
      if (acking) attachment.ack(offset + chunk.length);
    });
    await waitFor(() => screen.text().includes('ready$'), 'the prompt');
    // 8 MB through tmux, then a mark, then a flood that lasts until Ctrl-C: once the mark is
    // there, a client that kept reading would have been handed far more than the window.
    const marker = join(host.dataDir, 'flood-8mb');
    typeInto(attachment, `yes | head -c 8000000; : > ${marker}; yes\r`);
    await waitFor(() => attachment.producedOffset > liveWindowBytes, 'the flood to fill the window');
    await waitFor(() => existsSync(marker), '8 MB of flood through tmux', 30_000);
    const onePtyRead = 64 * 1024;
    expect(attachment.producedOffset - attachment.ackedOffset).toBeLessThanOrEqual(liveWindowBytes + onePtyRead);
    expect(attachment.ackedOffset).toBe(0);

    const foreground = async () =>
      (await host.tmux('display-message', '-p', '-t', '=hangar-flood:', '#{pane_current_command}')).trim();
    // The mark is written right before the last `yes` starts: a Ctrl-C typed while bash is still
    // between the two commands is bash's to take (it may abort the list or not), not `yes`'s.
    await waitFor(async () => (await foreground()) === 'yes', 'the last `yes` to run');
    // Ctrl-C reaches the pane while the client is a full window behind: `yes` is gone and the
    // shell has the terminal again, as tmux sees it. The next line is typed only then: typed at
    // once, it could reach the pane before the signal's input flush and be discarded with it.
    typeInto(attachment, '\x03');
    await waitFor(async () => (await foreground()) === 'bash', 'Ctrl-C to stop the flood');
    typeInto(attachment, 'echo stopped-$((6*7))\r');
    acking = true;
    attachment.ack(attachment.producedOffset);
    await waitFor(() => screen.text().includes('stopped-42'), 'the shell to answer after Ctrl-C');
  });

  it('a client that comes back gets exactly the bytes it has not acked', async () => {
    await shellSession('resume');
    const attachment = await sessions.attach('resume', { cols: 80, rows: 24 });
    // What it holds already (tmux may have drawn before attach() returned), then what comes.
    const held = attachment.readFrom(0) ?? new Uint8Array(0);
    const chunks: { chunk: Uint8Array; offset: number }[] = held.length > 0 ? [{ chunk: held.slice(), offset: 0 }] : [];
    attachment.onOutput((chunk, offset) => chunks.push({ chunk: chunk.slice(), offset }));
    typeInto(attachment, 'echo one-$((1+1))\r');
    await waitFor(
      () => new TextDecoder().decode(Buffer.concat(chunks.map((c) => c.chunk))).includes('one-2'),
      'the first echo',
    );
    const acked = Math.floor(attachment.producedOffset / 2);
    attachment.ack(acked);
    attachment.setConnected(false);
    typeInto(attachment, 'echo two-$((1+2))\r');
    await waitFor(
      () => new TextDecoder().decode(Buffer.concat(chunks.map((c) => c.chunk))).includes('two-3'),
      'the second echo',
    );

    const all = Buffer.concat(chunks.map((c) => c.chunk));
    expect(chunks[0]!.offset).toBe(0);
    expect(all.length).toBe(attachment.producedOffset);
    expect(attachment.ackedOffset).toBe(acked);
    expect(Buffer.from(attachment.readFrom(acked)!)).toEqual(all.subarray(acked));
    expect(Buffer.from(attachment.readFrom(acked + 3)!)).toEqual(all.subarray(acked + 3));
    expect(attachment.readFrom(attachment.producedOffset)!.length).toBe(0);
    expect(attachment.readFrom(acked - 1)).toBeUndefined();
    expect(attachment.readFrom(attachment.producedOffset + 1)).toBeUndefined();

    attachment.setConnected(true);
    expect(sessions.getAttachment(attachment.id)).toBe(attachment);
  });

  it('a client that stays away past the replay window is detached; the session lives on', async () => {
    await shellSession('away', { replayWindowMs: 300 });
    const attachment = await sessions.attach('away', { cols: 80, rows: 24 });
    const ended = new Promise((resolve) => attachment.onEnd(resolve));
    const started = Date.now();
    attachment.setConnected(false);
    expect(await ended).toEqual({ exitCode: null, reason: 'detached' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(sessions.getAttachment(attachment.id)).toBeUndefined();
    expect(await sessions.list()).toMatchObject([{ name: 'away', alive: true, attached_clients: 0 }]);
  });

  it('disposing the manager detaches its clients but keeps the session running', async () => {
    await shellSession('outlive');
    const attachment = await sessions.attach('outlive', { cols: 80, rows: 24 });
    const ended = new Promise((resolve) => attachment.onEnd(resolve));
    await sessions.dispose();
    expect(await ended).toEqual({ exitCode: null, reason: 'detached' });
    expect(await host.tmux('list-sessions', '-F', '#{session_name} #{session_attached}')).toBe('hangar-outlive 0\n');
  });
});
