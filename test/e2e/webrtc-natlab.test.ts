import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useCleanups } from '../support/cleanups.js';
import { BASH } from '../support/processes.js';
import { attachIn, canNatLab, captureIn, startNatLab, type NatLab } from '../support/natlab.js';

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
  const listed = JSON.parse((await hangarIn(['session', 'ls', 'mini', '--json'])).stdout) as {
    sessions: { name: string }[];
  }[];
  expect(listed[0]!.sessions.map((s) => s.name)).toEqual(['work']);
  const hosts = JSON.parse((await hangarIn(['hosts', 'ls', '--json'])).stdout) as { name: string; via: string }[];
  expect(hosts.find((h) => h.name === 'mini')).toMatchObject({ via: want });
  // A job runs through the same path.
  const job = await hangarIn([
    'run',
    '--host',
    'mini',
    '--executor',
    'shell',
    '--no-workspace',
    '-c',
    'echo job-across',
  ]);
  expect(job.code, job.stderr).toBe(0);
  expect(job.stdout).toContain('job-across');
  await during?.(lab);
  await hangarIn(['session', 'kill', 'mini', 'work']);
}

describe.skipIf(!canNatLab)('WebRTC across two NATs (natlab namespaces)', () => {
  it('port-preserving NATs on both sides: hole-punched, hosts ls says p2p; a job runs', async () => {
    await acrossNats('cone', 'p2p');
  }, 120_000);

  it('symmetric NATs: through coturn on the public segment, hosts ls says turn; a job runs; a canary typed into the terminal is in neither the relay’s nor coturn’s capture', async () => {
    await acrossNats('symmetric', 'turn', async ({ ns, laptop }) => {
      // A canary typed into the terminal over TURN: what the relay's port and coturn's carry,
      // captured on the public segment where both listen, holds it nowhere (DTLS records only).
      const canary = `CANARY${randomBytes(6).toString('hex').toUpperCase()}`;
      const relayWire = captureIn(cleanups, ns, 'tcp port 8443');
      const turnWire = captureIn(cleanups, ns, 'udp');
      await Promise.all([relayWire.ready, turnWire.ready]);
      const attached = attachIn(cleanups, ns, laptop, ['mini', 'work']);
      await attached.waitFor('$ ');
      attached.type(`echo ${canary}\r`);
      await attached.waitFor(`\n${canary}`);
      attached.type('\x1d');
      expect(await attached.exited).toBe(0);
      const [relayBytes, turnBytes] = await Promise.all([relayWire.stop(), turnWire.stop()]);
      // The captures saw the session: the attach's signaling on the relay, its data through coturn.
      expect(relayBytes.length).toBeGreaterThan(2_000);
      expect(turnBytes.length).toBeGreaterThan(10_000);
      expect(relayBytes.includes(Buffer.from(canary))).toBe(false);
      expect(turnBytes.includes(Buffer.from(canary))).toBe(false);
      expect(turnBytes.includes(Buffer.from(`echo ${canary.slice(0, 8)}`))).toBe(false);
    });
  }, 120_000);
});
