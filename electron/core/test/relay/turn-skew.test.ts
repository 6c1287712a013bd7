import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { HangarCore } from '../../src/core.js';
import { PASSWORD, startTestRelay, uniqueEmail } from '../../../../relay/test/support/relay-fixture.js';
import { dirFor, useCleanups } from '../../../../test/support/cleanups.js';

const cleanups = useCleanups();
const turn = { urls: ['turn:127.0.0.1:3478'], secret: 'a-secret-of-some-length' };

/**
 * A device asks the relay for TURN credentials before a WebRTC dial and keeps them while they
 * have more than 5 minutes left. Counted by the relay's expires_at against this computer's clock,
 * a computer 6 minutes ahead of the relay's saw 4 left of the 10 and asked again at every dial.
 */
describe("a device's TURN credentials and its clock", () => {
  it.each([
    { what: '6 minutes ahead of', aheadMs: 6 * 60_000 },
    { what: 'in step with', aheadMs: 0 },
  ])("are kept as long as the relay says they last, the computer's clock $what the relay's", async ({ aheadMs }) => {
    // Behind once signed up: a login's proof must be within 5 minutes of the relay's clock.
    let relayBehindMs = 0;
    const relay = await startTestRelay({ turn, now: () => Date.now() - relayBehindMs });
    cleanups.push(() => relay.stop());
    const core = await HangarCore.open({ home: dirFor(cleanups, 'turn-skew'), logger: pino({ level: 'silent' }) });
    cleanups.push(() => core.dispose());
    await core.account.signUp({ relay_url: relay.url, email: uniqueEmail('skew'), password: PASSWORD });
    relayBehindMs = aheadMs;

    const first = await core.account.iceServers();
    expect(first).toEqual([
      expect.objectContaining({ hostname: '127.0.0.1', username: expect.stringMatching(/^\d+:/) }),
    ]);
    // A second later new credentials would name another expiry second: the same ones are kept.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const second = await core.account.iceServers();
    expect(second).toEqual(first);
  });
});
