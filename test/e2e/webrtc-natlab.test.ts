import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useCleanups } from '../support/cleanups.js';
import { BASH, HANGAR_BIN } from '../support/processes.js';
import { attachIn, canNatLab, captureIn, runJob, startNatLab, waitForLine, type NatLab } from '../support/natlab.js';

/**
 * Across two NATs (test/support/natlab.ts: ../shared/tools/natlab.py's namespaces, a public
 * segment with the relay and coturn, the host behind one NAT, the computer behind another; neither
 * can reach the other's private address). Port-preserving NATs: hole punching works, the link is
 * `p2p`. Symmetric NATs: it cannot, and the link runs through coturn on the public segment: `turn`.
 * Everything runs in namespaces this test makes and removes; skipped where `ip netns` is not
 * available (not root).
 */

const cleanups = useCleanups();

async function acrossNats(mode: 'cone' | 'symmetric', want: 'p2p' | 'turn', during?: (lab: NatLab) => Promise<void>) {
  const lab = await startNatLab(cleanups, mode);
  const { hangarIn } = lab;

  const started = Date.now();
  const made = await hangarIn(['session', 'new', 'mini', '--name', 'work', ...BASH]);
  console.log(`[natlab ${mode}] first session across the NATs: ${Date.now() - started} ms`);
  expect(made.stderr).toBe('');
  expect(made.code).toBe(0);
  const asked = await hangarIn(['session', 'ls', 'mini', '--json']);
  expect(asked.code, asked.stderr).toBe(0);
  const listed = JSON.parse(asked.stdout) as {
    sessions: { name: string }[];
  }[];
  expect(listed[0]!.sessions.map((s) => s.name)).toEqual(['work']);
  const hosts = JSON.parse((await hangarIn(['hosts', 'ls', '--json'])).stdout) as { name: string; via: string }[];
  expect(hosts.find((h) => h.name === 'mini')).toMatchObject({ via: want });
  // A job runs through the same path.
  await runJob(hangarIn, 'job-across');
  await during?.(lab);
  await hangarIn(['session', 'kill', 'mini', 'work']);
}

// retry 1, for the TURN case: now and then (about 1 command in 80 over TURN under load) the
// command's WebRTC library deadlocks and the command hangs: libdatachannel 0.24.5, inside
// node-datachannel 0.33.4 (the newest on the registry here), takes its ICE and DTLS locks in
// opposite orders when a DTLS ClientHello is queued as ICE connects through TURN
// (paullouisageneau/libdatachannel#1630, fixed upstream after that release). README "Known issues".
describe.skipIf(!canNatLab)('WebRTC across two NATs (natlab namespaces)', { retry: 1 }, () => {
  it('port-preserving NATs on both sides: hole-punched, hosts ls says p2p; a job runs', async () => {
    await acrossNats('cone', 'p2p');
  }, 120_000);

  it('symmetric NATs: through coturn on the public segment, hosts ls says turn; a job runs; a canary typed into the terminal and one served by a preview are in neither the relay’s nor coturn’s capture', async () => {
    await acrossNats('symmetric', 'turn', async (lab) => {
      const { ns, laptop } = lab;
      // A canary typed into the terminal and another served by a preview over TURN: what the
      // relay's port and coturn's carry, captured on the public segment where both listen, holds
      // neither (DTLS records only).
      const canary = `CANARY${randomBytes(6).toString('hex').toUpperCase()}`;
      const served = `SERVED${randomBytes(6).toString('hex').toUpperCase()}`;
      // The preview's origin: a small HTTP server on the host, on its loopback.
      const origin = lab.spawn('hostA', [
        process.execPath,
        '-e',
        `require('http').createServer((q, s) => s.end(${JSON.stringify(`<p>${served}</p>`)})).listen(0, '127.0.0.1', function () { console.log(this.address().port) })`,
      ]);
      const originPort = Number(await waitForLine(origin, (line) => /^\d+$/.test(line), 'the preview origin'));
      const relayWire = captureIn(cleanups, ns, 'tcp port 8443');
      const turnWire = captureIn(cleanups, ns, 'udp');
      await Promise.all([relayWire.ready, turnWire.ready]);
      const attached = attachIn(cleanups, ns, laptop, ['mini', 'work']);
      await attached.waitFor('$ ');
      attached.type(`echo ${canary}\r`);
      await attached.waitFor(`\n${canary}`);

      // The preview, opened on the computer (its local address, in its namespace) and fetched there.
      const added = await lab.hangarIn(['preview', 'add', 'mini', String(originPort)]);
      expect(added.code, added.stderr).toBe(0);
      const opened = lab.spawn('hostB', [process.execPath, HANGAR_BIN, 'preview', 'open', 'mini', String(originPort)], {
        HANGAR_HOME: laptop,
      });
      const local = /at (http:\/\/localhost:\d+\/)/.exec(
        await waitForLine(opened, (line) => /at http:\/\/localhost:\d+\//.test(line), 'hangar preview open'),
      )![1]!;
      const page = await lab.exec('hostB', [
        process.execPath,
        '-e',
        `fetch(${JSON.stringify(local)}).then((r) => r.text()).then((t) => process.stdout.write(t))`,
      ]);
      expect(page.stdout, page.stderr).toContain(served);
      // The preview's own link ran over TURN too (its command's core dialed as every command does).
      const listed = await lab.hangarIn(['hosts', 'ls', '--json']);
      expect(listed.code, listed.stderr).toBe(0);
      const hosts = JSON.parse(listed.stdout) as {
        name: string;
        via: string;
      }[];
      expect(hosts.find((h) => h.name === 'mini')).toMatchObject({ via: 'turn' });

      attached.type('\x1d');
      expect(await attached.exited).toBe(0);
      const [relayBytes, turnBytes] = await Promise.all([relayWire.stop(), turnWire.stop()]);
      // The captures saw the session: the signaling on the relay, the terminal and the page through coturn.
      expect(relayBytes.length).toBeGreaterThan(2_000);
      expect(turnBytes.length).toBeGreaterThan(10_000);
      for (const secret of [canary, served, `echo ${canary.slice(0, 8)}`]) {
        expect(relayBytes.includes(Buffer.from(secret)), secret).toBe(false);
        expect(turnBytes.includes(Buffer.from(secret)), secret).toBe(false);
      }
    });
  }, 120_000);
});
