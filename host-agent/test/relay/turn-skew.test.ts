import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadOrCreateAgentKey } from '../../src/identity/keys.js';
import { enroll, RelayLink } from '../../src/relay/index.js';
import { AgentStore } from '../../src/store/db.js';
import { enrollLine, signup, startTestRelay, waitFor } from '../../../relay/test/support/relay-fixture.js';
import { useCleanups } from '../../../test/support/cleanups.js';

const cleanups = useCleanups();
const turn = { urls: ['turn:127.0.0.1:3478'], secret: 'a-secret-of-some-length' };

/**
 * The relay hands an online host TURN credentials that last TURN_TTL_MS (10 minutes) by the
 * relay's clock, and renews them at half that. A host whose clock is ahead of the relay's took
 * them for expired that much early, by its own clock: more than 5 minutes ahead, it went without
 * TURN between a renewal and the next; more than 10, always.
 */
describe("a host's TURN credentials and its clock", () => {
  it.each([
    { what: '11 minutes ahead of', aheadMs: 11 * 60_000 },
    { what: 'in step with', aheadMs: 0 },
  ])("last as long as the relay says from when they came, the host's clock $what the relay's", async ({ aheadMs }) => {
    // The relay's clock, behind the host's (this process's) once the host is enrolled: signing up
    // and enrolling check device proofs within 5 minutes of it.
    let relayBehindMs = 0;
    const relay = await startTestRelay({ turn, now: () => Date.now() - relayBehindMs });
    cleanups.push(() => relay.stop());
    const owner = await signup(relay.client);
    const dataDir = await mkdtemp(join(tmpdir(), 'hangar-turn-skew-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const { line } = await enrollLine(relay.client, owner);
    await enroll({ dataDir, token: line, name: 'ahead' });
    relayBehindMs = aheadMs;

    const store = AgentStore.open(dataDir);
    cleanups.push(() => store.dispose());
    const key = await loadOrCreateAgentKey(dataDir);
    const link = RelayLink.start({
      store,
      signer: key.signer,
      listen: () => ({ host: '0.0.0.0', port: 7070 }),
      logger: pino({ level: 'silent' }),
      closeLinksOf: () => undefined,
      readTailnet: async () => ({ state: 'absent' }),
      backoff: { initialMs: 50, maxMs: 500 },
    });
    cleanups.push(() => link.dispose());
    await waitFor('the link online', () => link.info()?.connected === true);
    const servers = await waitFor('TURN servers for WebRTC links', () => {
      const given = link.iceServers();
      return given.length > 0 && given;
    });
    expect(servers).toEqual([
      expect.objectContaining({ hostname: '127.0.0.1', port: 3478, username: expect.stringMatching(/^\d+:/) }),
    ]);
  });
});
