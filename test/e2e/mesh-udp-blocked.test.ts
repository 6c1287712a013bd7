import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useCleanups } from '../support/cleanups.js';
import { attachIn, canNatLab, runJob, startNatLab, waitForLine, iptablesIn } from '../support/natlab.js';
import { BASH, HANGAR_BIN } from '../support/processes.js';
import { TickingTerminal } from '../support/ticking-terminal.js';

/**
 * UDP blocked at the host's NAT (test/support/natlab.ts, port-preserving NATs; natA drops every
 * forwarded UDP packet): no WebRTC path can form, and the first dial must not wait for ICE to give
 * up. The dial races its ways (relay/dial-race.ts): the host's addresses, then WebRTC 0.75 s
 * later, then the relay's splice when no data channel opened 1.5 s after that; the splice opens
 * first and wins. Then natA lets UDP through again, and a live core's link, held by an attached
 * terminal, moves to a hole-punched WebRTC path by itself (the background upgrade), the terminal
 * going on with no byte lost or doubled.
 */

const cleanups = useCleanups();

const UDP_DROP = ['FORWARD', '-p', 'udp', '-j', 'DROP'];

interface HostLine {
  name: string;
  via: string;
  status: string;
}

// retry 1: in some loaded runs (2 of 17 in one session), hangar attach through the running hangar ui
// printed nothing for 30 s, while the ui's core had linked and its event loop ran on (so not the
// WebRTC library's deadlock once suspected here). The likely cause, fixed since: the host's first
// screen arriving in one delivery with its answer to session.attach, before the core's terminal
// had a listener (electron/core/test/terminal/first-screen.test.ts). The retry stays until clean
// CI runs show it gone.
describe.skipIf(!canNatLab)('UDP blocked at the host’s NAT (natlab namespaces)', { timeout: 240_000, retry: 1 }, () => {
  it('the first dial links through the relay’s splice within 5 s; once UDP passes, the link moves to p2p with no byte lost or doubled', async () => {
    const lab = await startNatLab(cleanups, 'cone', (ns) => iptablesIn(ns, 'natA', ['-I', ...UDP_DROP]));
    const { hangarIn } = lab;
    // A command's own time (its start-up and exit counted), and its dial's: from the call reaching
    // its core to the link made, as its log says (debug: the core logs each call as it comes).
    const timed = async (args: string[]) => {
      const began = Date.now();
      const ran = await lab.exec('hostB', [process.execPath, HANGAR_BIN, ...args], {
        HANGAR_HOME: lab.laptop,
        HANGAR_LOG_LEVEL: 'debug',
      });
      const ms = Date.now() - began;
      const logged = ran.stderr
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { time: number; msg: string; via?: string });
      const asked = logged.find((l) => l.msg === 'core API request')?.time;
      const linked = logged.find((l) => l.msg === 'linked through a fallback');
      const dialMs = asked !== undefined && linked !== undefined ? linked.time - asked : undefined;
      return { ...ran, ms, dialMs, via: linked?.via };
    };

    // The first dial: the enrollment's first link, raced; WebRTC finds nothing, the splice links.
    const made = await timed(['session', 'new', 'mini', '--name', 'work', ...BASH]);
    expect(made.code, made.stderr).toBe(0);
    const listedHosts = await timed(['hosts', 'ls', '--json']);
    const mini = (JSON.parse(listedHosts.stdout) as HostLine[]).find((h) => h.name === 'mini');
    expect(mini).toMatchObject({ via: 'relayed', status: expect.stringMatching(/^online/) });
    const sessions = await timed(['session', 'ls', 'mini', '--json']);
    expect(sessions.code, sessions.stderr).toBe(0);
    expect((JSON.parse(sessions.stdout) as { sessions: { name: string }[] }[])[0]!.sessions.map((s) => s.name)).toEqual(
      ['work'],
    );
    const job = await runJob(timed, 'job-relayed');
    const both = (t: { ms: number; dialMs?: number | undefined }) => `${t.dialMs} ms (command ${t.ms} ms)`;
    console.log(
      `[mesh-udp-blocked] UDP blocked, each command with a core of its own, dial (call to link) and whole command: ` +
        `session new (first dial, pairing) ${both(made)}, hosts ls ${both(listedHosts)}, session ls ${both(sessions)}, run ${both(job)}`,
    );
    // mesh.md T2: a working path within 5 s with UDP dropped (was 3 s for the addresses, 5 s of ICE, then the splice).
    for (const t of [made, sessions, job]) {
      expect(t.via).toBe('relayed');
      expect(t.dialMs).toBeLessThan(5_000);
    }

    // A live core (hangar ui) holds the link; a terminal attached through it ticks.
    // It looks for a better path every second (README: HANGAR_UPGRADE_DELAY_MS), not 10 s after the
    // link was made and then 15 s, 20 s: the test watches the move happen, not the default's wait.
    const ui = lab.spawn('hostB', [process.execPath, HANGAR_BIN, 'ui'], {
      HANGAR_HOME: lab.laptop,
      HANGAR_LOG_LEVEL: 'warn',
      HANGAR_UPGRADE_DELAY_MS: process.env['HANGAR_UPGRADE_DELAY_MS'] ?? '1000',
    });
    await waitForLine(ui, (line) => /http:\/\/127\.0\.0\.1:\d+\//.test(line), 'hangar ui');
    const via = async () =>
      (JSON.parse((await hangarIn(['hosts', 'ls', '--json'])).stdout || '[]') as HostLine[]).find(
        (h) => h.name === 'mini',
      );
    // Kept on the running core (no move onto a link of its own, issue 17): its terminal is what the
    // path upgrade below must carry across without a loss.
    const attached = attachIn(cleanups, lab.ns, lab.laptop, ['mini', 'work'], { HANGAR_ATTACH_HANDOVER: 'off' });
    await attached.waitFor('$ ');
    expect(await via()).toMatchObject({ via: 'relayed' });
    const ticking = new TickingTerminal(
      { write: (text) => attached.type(text), raw: () => attached.raw() },
      join(lab.hostHome, 'stop-ticking'),
    );
    cleanups.push(() => ticking.stopNow());
    await ticking.start();

    // UDP passes again: the background upgrade finds the hole-punched path.
    await iptablesIn(lab.ns, 'natA', ['-D', ...UDP_DROP]);
    const unblocked = Date.now();
    let seen: HostLine | undefined;
    const upgradeBy = Date.now() + 90_000;
    while ((seen = await via())?.via !== 'p2p') {
      if (Date.now() > upgradeBy) throw new Error(`not on p2p 90 s after UDP passed: ${JSON.stringify(seen)}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const took = Date.now() - unblocked;
    console.log(`[mesh-udp-blocked] UDP unblocked → the live core's link on p2p: ${took} ms`);
    // mesh.md T2: upgraded within 60 s.
    expect(took).toBeLessThan(60_000);

    await ticking.more(20, 'ticks after the move');
    await ticking.finish(41);
    attached.type('echo after-""move\r');
    await attached.waitFor('after-move');
    attached.type('\x1d');
    expect(await attached.exited).toBe(0);
    await hangarIn(['session', 'kill', 'mini', 'work']);
  });
});
