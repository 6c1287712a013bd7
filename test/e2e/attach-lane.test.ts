import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HangarCore, openLane, type TerminalClient } from '@hangar/desktop/core';
import { usePairedHost, type PairedHost } from '../support/paired-host.js';
import { AttachedCli } from '../support/pty-client.js';
import { BASH, hangar, pairWith, removeDir, tempDir, tmux } from '../support/processes.js';

/**
 * `hangar attach` with its keys and echoes on a lane (lane/PROTOCOL.md, "Purposes: terminal"):
 * a real agent, real tmux, the command in a pty. The agent says when an attachment moved onto a
 * lane (its log, at info); the command moves in a pause in typing once it has typed.
 */
describe('hangar attach over a lane', () => {
  // One host for these, each on a session of its own (nine: the agent's limit is raised from 5).
  // Each test reads the agent's log written since it began. Its attach commands are closed after
  // it, and the next begins once each of its lanes has ended (the agent said so, or the lane's
  // session is gone), so that no earlier test's lane ends in a later test's part of the log.
  const box = usePairedHost({ agent: { logLevel: 'info', maxSessions: 10 }, shared: true });
  beforeEach(() => void marks.set(box, box.agent.stderr().length));
  afterEach(async () => {
    const moved = [
      ...log(box).matchAll(/"session":"([^"]+)","attachment":"([^"]+)","msg":"attachment moved onto a lane"/g),
    ];
    expect(moved.length).toBe(lanesMoved(box));
    await box.closeClients();
    for (const [, session, attachment] of moved)
      await waitFor(
        async () =>
          log(box)
            .split('\n')
            .some(
              (line) => line.includes(`"attachment":"${attachment}"`) && line.includes('lane of an attachment ended'),
            ) || !(await sessionAlive(box, session!)),
      );
  });

  it('typed text echoes over a lane, a flood arrives whole, resize reaches tmux', async () => {
    const client = await onLane(box, 'lane');
    client.type('echo over-the-lane\r');
    await client.waitForText(/^over-the-lane$/m);

    client.type('seq 1 200000; echo flood-done\r');
    const lines = await client.waitForText(/^flood-done$/m, 30_000);
    expect(lines[lines.indexOf('flood-done') - 1]).toBe('200000');

    client.resize(90, 25);
    await waitFor(
      async () => (await tmux(box.dataDir, ['display', '-p', '-t', 'hangar-lane', '#{window_width}'])).trim() === '90',
    );
    client.type('echo still-typing\r');
    await client.waitForText(/^still-typing$/m);
    expect(lanesMoved(box)).toBe(1);
  });

  it('2,000 keys typed across the move onto the lane arrive whole and in order', async () => {
    const file = join(box.home, 'typed.txt');
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'burst', ...BASH])).code).toBe(0);
    const client = box.attach('burst');
    await client.waitForText('$');
    client.type(`cat > ${file}\r`);
    // 40 lines of 49 keys and a newline, typed in pieces with pauses around the move's (100 ms
    // after the last key), so that keys are on their way while the lane opens.
    let typed = '';
    for (let line = 0; line < 40; line++)
      typed += `${String(line).padStart(4, '0')}-${'abcdefghij'.repeat(5).slice(0, 44)}\r`;
    expect(typed.length).toBe(2000);
    expect(lanesMoved(box)).toBe(0);
    for (let at = 0, piece = 0; at < typed.length; piece++) {
      const size = 7 + (piece % 13);
      client.type(typed.slice(at, at + size));
      at += size;
      await new Promise((r) => setTimeout(r, piece % 5 === 4 ? 90 + (piece % 3) * 10 : 3));
    }
    // It moved while the keys were being typed (in one of the pauses).
    expect(lanesMoved(box)).toBe(1);
    client.type('\x04');
    await client.waitForText(/^\$ $/m);
    expect(readFileSync(file, 'utf8')).toBe(typed.replaceAll('\r', '\n'));
  });

  it("the detach key detaches with today's message and exit 0; the session keeps running", async () => {
    const client = await onLane(box, 'away');
    client.type('\x1d');
    expect(await client.waitForExit()).toBe(0);
    expect(client.raw).toContain('[detached from box/away; it keeps running — reattach with: hangar attach box away]');
    const listed = await hangar(box.home, ['session', 'ls', 'box', '--json']);
    const sessions = JSON.parse(listed.stdout)[0].sessions as { name: string }[];
    expect(sessions.filter((session) => session.name === 'away')).toEqual([
      expect.objectContaining({ name: 'away', alive: true }),
    ]);
  });

  it("the session's command exiting with 3 makes attach exit 3 with today's message", async () => {
    const client = await onLane(box, 'three');
    client.type('exit 3\r');
    expect(await client.waitForExit(), client.raw.slice(-400)).toBe(3);
    expect(client.raw).toContain('[session three ended with status 3]');
  });

  it('HANGAR_LANES=off keeps the terminal on the link', async () => {
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'mux', ...BASH])).code).toBe(0);
    const client = new AttachedCli(
      box.home,
      ['box', 'mux'],
      { cols: 100, rows: 30 },
      { HANGAR_LANES: 'off', HANGAR_DEBUG: '1' },
    );
    try {
      await client.waitForText('$');
      client.type('echo first\r');
      await client.waitForText(/^first$/m);
      // Past the pause the move would wait for.
      await new Promise((r) => setTimeout(r, 400));
      client.type('echo second\r');
      await client.waitForText(/^second$/m);
      expect(lanesMoved(box)).toBe(0);
      // HANGAR_DEBUG says why there is no lane, as it does for every other reason.
      expect(client.raw).toContain('hangar: no lane (HANGAR_LANES=off); the terminal stays on the link');
    } finally {
      await client[Symbol.asyncDispose]();
    }
  });

  it('the size follows the client that typed last, on a lane or not', async () => {
    const size = async () =>
      (await tmux(box.dataDir, ['display', '-p', '-t', 'hangar-two', '#{window_width}x#{window_height}'])).trim();
    const first = await onLane(box, 'two');
    first.resize(90, 25);
    await waitFor(async () => (await size()) === '90x25');
    const second = box.attach('two', { cols: 70, rows: 20 });
    await second.waitForText('$');
    // Attached without typing, the second client follows the first's window; it stays off lanes.
    expect(await size()).toBe('90x25');
    second.type('echo from-second\r');
    await second.waitForText(/^from-second$/m);
    await waitFor(async () => (await size()) === '70x20');
    // The first client's lane ended (its keys could not take the size back) and it attached
    // again; the second, having typed, moved onto a lane in its pause.
    await waitFor(async () => /lane of an attachment ended/.test(log(box)));
    await waitFor(async () => lanesMoved(box) === 2);
    first.type('echo from-first\r');
    await first.waitForText(/^from-first$/m);
    await waitFor(async () => (await size()) === '90x25');
    // The second's lane went the same way, and the first is on a lane again.
    await waitFor(async () => log(box).split('lane of an attachment ended').length - 1 === 2);
    await waitFor(async () => lanesMoved(box) === 3);
  });

  it('a lane waits for the keys its stream was said to carry: refused if fewer come in 3 s, or more came', async () => {
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'wait', ...BASH])).code).toBe(0);
    const core = await HangarCore.open({ home: box.home, logger: pino({ level: 'silent' }) });
    let client: TerminalClient | undefined;
    try {
      let echoed = '';
      client = await core.attach('box', 'wait', { cols: 100, rows: 30 }, (attached) =>
        attached.onOutput(({ data }) => (echoed += Buffer.from(data).toString('latin1'))),
      );
      client.write(Buffer.from('echo typed-$((1+1))\r'));
      await waitFor(async () => echoed.includes('typed-2'));
      // A lane of the attachment's own link, naming more keys than were typed...
      const lane = (input_offset: number) =>
        openLane(core.connection('box'), { purpose: 'terminal', attachment_id: client!.attachment, input_offset });
      await expect(lane(1_000_000)).rejects.toMatchObject({ code: 'E_TIMEOUT', details: { lane: 'refused' } });
      // ...or fewer.
      await expect(lane(1)).rejects.toMatchObject({ code: 'E_BAD_REQUEST', details: { lane: 'refused' } });
      // The terminal stayed on its stream.
      client.write(Buffer.from('echo still-on-the-stream-$((2+2))\r'));
      await waitFor(async () => echoed.includes('still-on-the-stream-4'));
      expect(lanesMoved(box)).toBe(0);
    } finally {
      await client?.detach();
      await core.dispose();
    }
  });

  it('a lane of another link of the same device cannot take the attachment, nor learn it exists', async () => {
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'own', ...BASH])).code).toBe(0);
    const client = new AttachedCli(box.home, ['box', 'own'], { cols: 100, rows: 30 }, { HANGAR_LANES: 'off' });
    // The same device on a link of its own (another core: the window's, say).
    const core = await HangarCore.open({ home: box.home, logger: pino({ level: 'silent' }) });
    try {
      await client.waitForText('$');
      const typed = 'echo typed\r';
      client.type(typed);
      await client.waitForText(/^typed$/m);
      const attachment = /"attachment":"([^"]+)","msg":"attached"/.exec(log(box))?.[1];
      expect(attachment).toBeDefined();
      // The keys its stream carried, exactly: only the link was wrong.
      const lane = (attachment_id: string) =>
        openLane(core.connection('box'), { purpose: 'terminal', attachment_id, input_offset: typed.length });
      const refused = await lane(attachment!).catch((error: unknown) => error);
      const guessed = await lane('AAAAAAAAAAAAAAAAAAAAAA').catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: 'E_NOT_FOUND', details: { lane: 'refused' } });
      expect(guessed).toMatchObject({ code: 'E_NOT_FOUND', details: { lane: 'refused' } });
      expect(String((refused as Error).message).replace(attachment!, 'X')).toBe(
        String((guessed as Error).message).replace('AAAAAAAAAAAAAAAAAAAAAA', 'X'),
      );
      // The terminal stayed where it was, on its own stream.
      client.type('echo still-on-the-stream\r');
      await client.waitForText(/^still-on-the-stream$/m);
      expect(lanesMoved(box)).toBe(0);
      expect(attachments(box)).toBe(1);
    } finally {
      await core.dispose();
      await client[Symbol.asyncDispose]();
    }
  });

  it("a lane of another device's link cannot take the attachment", async () => {
    const client = await onLane(box, 'mine');
    const attachment = /"attachment":"([^"]+)","msg":"attachment moved onto a lane"/.exec(log(box))?.[1];
    expect(attachment).toBeDefined();
    const otherHome = tempDir('other-device');
    const other = await HangarCore.open({ home: otherHome, logger: pino({ level: 'silent' }) });
    try {
      await pairWith(otherHome, 'box', box.agent);
      await expect(
        openLane(other.connection('box'), { purpose: 'terminal', attachment_id: attachment!, input_offset: 0 }),
      ).rejects.toMatchObject({ code: 'E_NOT_FOUND', details: { lane: 'refused' } });
    } finally {
      await other.dispose();
      removeDir(otherHome);
    }
    client.type('echo still-mine\r');
    await client.waitForText(/^still-mine$/m);
  });
});

describe('hangar attach when its lane is cut', () => {
  const box = usePairedHost({ agent: { logLevel: 'info' }, viaProxy: true });

  it('attaches again through the link, and typing still works; the agent keeps no fd or tmux client of it', async () => {
    const client = await box.bashAttached('cut');
    // The agent's sockets (by inode) and pty masters (the native relay's own loop keeps an epoll and
    // an eventfd once started, which are neither).
    const fds = () => {
      const dir = `/proc/${box.agent.child.pid}/fd`;
      const links = readdirSync(dir).map((fd) => {
        try {
          return readlinkSync(join(dir, fd));
        } catch {
          return ''; // closed meanwhile
        }
      });
      return {
        sockets: links.filter((l) => l.startsWith('socket:')),
        ptys: links.filter((l) => /ptmx/.test(l)).length,
      };
    };
    const clients = async () =>
      (await tmux(box.dataDir, ['list-clients', '-t', 'hangar-cut', '-F', '#{client_pid}'])).split('\n').filter(Boolean)
        .length;
    // On the link's stream, before typing: what the agent holds for one attachment. Sockets open now
    // may close later (the pairing's HTTP connection waits out its keep-alive): only sockets made
    // from here on can be leaks of this attachment's lane, so those are counted, by inode.
    const held = fds();
    const made = () => fds().sockets.filter((s) => !held.sockets.includes(s)).length;
    client.type('echo typed-once\r');
    await client.waitForText(/^typed-once$/m);
    await waitFor(async () => lanesMoved(box) === 1);
    expect(box.proxy!.cutWhere('HGLANE/1')).toBe(1);
    // The host detaches the lane's attachment (it cannot be resumed); the command attaches anew.
    await waitFor(async () => /lane of an attachment ended; detaching/.test(log(box)));
    await waitFor(async () => attachments(box) === 2 && (await clients()) === 1);
    // A command that typed before the cut may move onto a new lane at once: that lane's socket is held, not leaked.
    await waitFor(async () => fds().ptys === held.ptys && made() === lanesMoved(box) - 1);
    client.type('echo after-the-cut\r');
    await client.waitForText(/^after-the-cut$/m);
  });
});

describe('hangar attach when its link drops while on a lane', () => {
  const box = usePairedHost({ agent: { logLevel: 'info' }, viaProxy: true });

  it('says the output meanwhile is not shown because a lane keeps no replay, not that a replay window passed, and typing still works', async () => {
    const client = await onLane(box, 'gone');
    // The lane and the link both go (Wi-Fi drops): the command reconnects and asks to resume, and
    // the host, which kept none of the lane's output, refuses: tmux's current screen follows.
    box.proxy!.cutAll();
    await client.waitForText('hangar: link dropped while on a lane (no replay): output meanwhile not shown', 15_000);
    expect(client.raw).not.toContain('replay window passed');
    client.type('echo after-the-drop\r');
    await client.waitForText(/^after-the-drop$/m, 15_000);
  });
});

describe("hangar attach while its lane's ACCEPT is on its way", () => {
  const box = usePairedHost({ agent: { logLevel: 'info' }, viaProxy: true });

  it("a resize between the stream's `lane` close and the lane's ACCEPT reaches tmux", async () => {
    const size = async () =>
      (await tmux(box.dataDir, ['display', '-p', '-t', 'hangar-grow', '#{window_width}x#{window_height}'])).trim();
    const client = await box.bashAttached('grow');
    const before = await size();
    expect(before).not.toBe('90x25');
    // What the agent sends on a lane (its ACCEPT first) comes 1.5 s late; the stream's `lane`
    // close, on the link, at once: the command is between the two that long.
    box.proxy!.setAnswerDelayWhere('HGLANE/1', 1500);
    client.type('echo typed-once\r');
    await client.waitForText(/^typed-once$/m);
    // The agent says so once its ACCEPT has gone (its relay runs).
    await waitFor(async () => lanesMoved(box) === 1);
    client.resize(90, 25);
    await waitFor(async () => (await size()) === '90x25');
    // The lane came, and the terminal is on it.
    client.type('echo on-the-lane\r');
    await client.waitForText(/^on-the-lane$/m);
    expect(lanesMoved(box)).toBe(1);
    expect(await size()).toBe('90x25');
  });
});

describe('hangar attach on a link far away (50 ms each way)', () => {
  // At debug the agent says how many bytes each lane carried.
  const box = usePairedHost({ agent: { logLevel: 'debug' }, viaProxy: true });

  it('a 100 KiB paste while the lane opens arrives whole and in order', async () => {
    const file = join(box.home, 'pasted.txt');
    const client = await box.bashAttached('paste');
    box.proxy!.setDelay(50);
    client.type(`cat > ${file}\r`);
    // Lines of 63 keys and a newline (under the pty's 4 KiB line), 100 KiB in all.
    let pasted = '';
    for (let line = 0; pasted.length < 100 * 1024; line++)
      pasted += `${String(line).padStart(5, '0')}-${'x'.repeat(57)}\r`;
    // The move begins 100 ms after the last key and takes round trips: the paste comes while it
    // is under way (held until the lane is there).
    await new Promise((r) => setTimeout(r, 130));
    expect(lanesMoved(box)).toBe(0);
    client.type(pasted);
    await waitFor(async () => lanesMoved(box) === 1);
    const expected = pasted.replaceAll('\r', '\n');
    await waitFor(async () => readFileSync(file, 'utf8').length >= expected.length, 20_000).catch(() => undefined);
    const written = readFileSync(file, 'utf8');
    expect(written.length).toBe(expected.length);
    expect(written === expected).toBe(true);
    client.type('\x04');
    await client.waitForText(/^\$ $/m, 20_000);
  });

  it('keys typed with the detach key while the lane opens go over the lane before the detach', async () => {
    const file = join(box.home, 'before-detach.txt');
    const client = await box.bashAttached('leave');
    box.proxy!.setDelay(50);
    client.type(`cat > ${file}\r`);
    await new Promise((r) => setTimeout(r, 130));
    const keys = 'typed-before-detach\r';
    client.type(`${keys}\x1d`);
    expect(await client.waitForExit()).toBe(0);
    expect(client.raw).toContain('[detached from box/leave; it keeps running');
    // The move finished, the held keys went over the lane, and its CLOSE after them detached the
    // attachment (a session.detach over the link could overtake them). Whether tmux read them
    // from its pty before the host's SIGHUP reached its client is a race the link's stream shares:
    // the file is not checked here.
    expect(lanesMoved(box)).toBe(1);
    await waitFor(async () => /lane of an attachment ended; detaching/.test(log(box)));
    const ended = log(box)
      .split('\n')
      .filter((line) => line.includes('"purpose":"terminal"') && line.includes('"msg":"lane ended"'))
      .map((line) => JSON.parse(line) as { how: string; bytes_in: number });
    expect(ended).toEqual([expect.objectContaining({ how: 'closed', bytes_in: keys.length })]);
  });
});

/** A new bash session, attached; typed into and left quiet until the agent moved it onto a lane. */
async function onLane(box: PairedHost, session: string): Promise<AttachedCli> {
  const before = lanesMoved(box);
  const client = await box.bashAttached(session);
  client.type('echo typed-once\r');
  await client.waitForText(/^typed-once$/m);
  await waitFor(async () => lanesMoved(box) > before);
  return client;
}

/** Where each test's part of a shared host's agent log begins (a fresh host's: at 0). */
const marks = new WeakMap<PairedHost, number>();

/** The agent's log since the test began. */
function log(box: PairedHost): string {
  return box.agent.stderr().slice(marks.get(box) ?? 0);
}

async function sessionAlive(box: PairedHost, session: string): Promise<boolean> {
  return tmux(box.dataDir, ['has-session', '-t', `hangar-${session}`]).then(
    () => true,
    () => false,
  );
}

function lanesMoved(box: PairedHost): number {
  return log(box).split('attachment moved onto a lane').length - 1;
}

function attachments(box: PairedHost): number {
  return log(box).split('"msg":"attached"').length - 1;
}

/** Bounded: 15 s, room for a loaded CI machine (a re-attach after a cut takes a few round trips and a tmux client). */
async function waitFor(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not met in ${timeoutMs} ms: ${check.toString().slice(0, 160)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
