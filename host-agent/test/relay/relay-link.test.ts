import { mkdtemp, readFile, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { toHex, verifySignal, type HangarError } from '@hangar/shared';
import { loadOrCreateAgentKey } from '../../src/identity/keys.js';
import { enroll, relayStatus, RelayLink } from '../../src/relay/index.js';
import type { TailnetStatus } from '../../src/relay/tailscale.js';
import { AgentStore } from '../../src/store/db.js';
import {
  deviceSocket,
  enrollLine,
  signup,
  startTestRelay,
  waitFor,
  type SignedIn,
  type TestRelay,
} from '../../../relay/test/support/relay-fixture.js';
import { useCleanups } from '../../../test/support/cleanups.js';

/**
 * The agent's relay link against a real relay (in this process): enrolled through `enroll()`
 * (what the installer calls), online, re-publishing addresses that change, answering signals,
 * and what `relayStatus()` reports. Serving end to end is test/e2e/relay-enrollment.test.ts.
 */

const cleanups = useCleanups();

async function enrolledHost(relay: TestRelay, owner: SignedIn) {
  const dataDir = await mkdtemp(join(tmpdir(), 'hangar-relay-link-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const { line } = await enrollLine(relay.client, owner);
  const enrolled = await enroll({ dataDir, token: line, name: 'mini' });
  return { dataDir, enrolled };
}

async function startLink(dataDir: string, tailnet: () => TailnetStatus, pollMs?: number) {
  const store = AgentStore.open(dataDir);
  cleanups.push(() => store.dispose());
  const key = await loadOrCreateAgentKey(dataDir);
  const link = RelayLink.start({
    store,
    signer: key.signer,
    listen: () => ({ host: '0.0.0.0', port: 7070 }),
    logger: pino({ level: 'silent' }),
    closeLinksOf: () => undefined,
    readTailnet: async () => tailnet(),
    addressesEveryMs: 50,
    backoff: { initialMs: 50, maxMs: 500 },
    ...(pollMs === undefined ? {} : { pollMs }),
  });
  cleanups.push(() => link.dispose());
  return { link, key };
}

describe('the relay link of an enrolled agent', () => {
  it('goes online, publishes the tailnet address again when it changes, and status says so', async () => {
    const relay = await startTestRelay();
    cleanups.push(() => relay.stop());
    const owner = await signup(relay.client);
    const { dataDir, enrolled } = await enrolledHost(relay, owner);
    expect(relayStatus(dataDir)).toMatchObject({ host_id: enrolled.host_id, state: 'not serving' });

    let ips = ['100.64.0.7'];
    await startLink(dataDir, () => ({ state: 'running', ips, dnsName: null }));
    const device = deviceSocket(relay.url, owner);
    cleanups.push(() => device.socket.dispose());
    await waitFor(
      'the tailnet address',
      () => device.hosts.get(enrolled.host_id)?.record?.tailnet[0] === '100.64.0.7:7070',
    );
    ips = ['100.64.0.8'];
    await waitFor('the new tailnet address', () =>
      device.hosts.get(enrolled.host_id)?.record?.tailnet.includes('100.64.0.8:7070'),
    );
    expect(relayStatus(dataDir)).toMatchObject({ state: 'online', error: null, first_links_pending: 1 });
  });

  it('notices an enrollment made while it runs (hangar-agent enroll beside a serving agent), with no timer armed until then', async () => {
    const relay = await startTestRelay();
    cleanups.push(() => relay.stop());
    const owner = await signup(relay.client);
    const dataDir = await mkdtemp(join(tmpdir(), 'hangar-relay-link-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    // Intervals only are faked, to count them: a link not enrolled polls nothing (enroll tells it).
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    let link: RelayLink;
    try {
      ({ link } = await startLink(dataDir, () => ({ state: 'absent' })));
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(link.info()).toBeNull();
    const { line } = await enrollLine(relay.client, owner);
    const enrolled = await enroll({ dataDir, token: line, name: 'late' });
    await waitFor('the link online', () => link.info()?.connected === true);
    expect(link.info()).toMatchObject({ host_id: enrolled.host_id, relay_url: relay.url });
  });

  it('still notices an enrollment after the file it watches was removed or replaced', async () => {
    const relay = await startTestRelay();
    cleanups.push(() => relay.stop());
    const owner = await signup(relay.client);
    const dataDir = await mkdtemp(join(tmpdir(), 'hangar-relay-link-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const { link } = await startLink(dataDir, () => ({ state: 'absent' }));
    const file = join(dataDir, 'relay-enrollment-changed');
    // A tidy-up removes it; something else writes it by rename (a new inode): a watch on the old one
    // hears nothing of the enroll that follows.
    await unlink(file);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await writeFile(join(dataDir, 'elsewhere'), '');
    await rename(join(dataDir, 'elsewhere'), file);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const { line } = await enrollLine(relay.client, owner);
    const enrolled = await enroll({ dataDir, token: line, name: 'late' });
    await waitFor('the link online', () => link.info()?.connected === true);
    expect(link.info()).toMatchObject({ host_id: enrolled.host_id });
  });

  it('follows no symlink planted at the file it watches: writes nothing through it, reads the enrollment itself', async () => {
    const relay = await startTestRelay();
    cleanups.push(() => relay.stop());
    const owner = await signup(relay.client);
    const dataDir = await mkdtemp(join(tmpdir(), 'hangar-relay-link-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const outside = await mkdtemp(join(tmpdir(), 'hangar-relay-link-outside-'));
    cleanups.push(() => rm(outside, { recursive: true, force: true }));
    const victim = join(outside, 'precious');
    await writeFile(victim, "not the agent's\n");
    await symlink(victim, join(dataDir, 'relay-enrollment-changed'));
    const { link } = await startLink(dataDir, () => ({ state: 'absent' }), 50);
    const { line } = await enrollLine(relay.client, owner);
    const enrolled = await enroll({ dataDir, token: line, name: 'late' });
    await waitFor('the link online', () => link.info()?.connected === true);
    expect(link.info()).toMatchObject({ host_id: enrolled.host_id });
    expect(await readFile(victim, 'utf8')).toBe("not the agent's\n");
  });

  it('answers a device signal at once, signed, saying it has no WebRTC yet', async () => {
    const relay = await startTestRelay();
    cleanups.push(() => relay.stop());
    const owner = await signup(relay.client);
    const { dataDir, enrolled } = await enrolledHost(relay, owner);
    const { key } = await startLink(dataDir, () => ({ state: 'absent' }));
    const device = deviceSocket(relay.url, owner);
    cleanups.push(() => device.socket.dispose());
    await waitFor('the host online', () => device.hosts.get(enrolled.host_id)?.online && device.socket.isReady);

    const hostKey = toHex(key.signer.publicKey);
    const answer = await device.socket.request({
      toHost: enrolled.host_id,
      recipientKey: hostKey,
      requestId: 'offer-0001',
      payload: JSON.stringify({ type: 'offer', sdp: 'v=0' }),
    });
    expect(
      verifySignal({
        senderKey: hostKey,
        recipientKey: owner.key.publicKey,
        requestId: 'offer-0001',
        payload: answer.payload,
        signature: answer.signature,
      }),
    ).toBe(true);
    const error = (JSON.parse(answer.payload) as { error: HangarError }).error;
    expect(error.code).toBe('E_UNAVAILABLE');
    expect(error.message).toMatch(/does not speak WebRTC yet/);
  });
});
