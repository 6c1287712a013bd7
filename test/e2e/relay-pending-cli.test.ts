import { describe, expect, it } from 'vitest';
import { hangar } from '../support/processes.js';
import { RelayDouble } from '../support/relay-double.js';
import { loginCli, signupCli, useRelayStack } from '../support/relay-stack.js';

/**
 * A computer signed in to an account that has not approved it yet sees none of the account's
 * hosts: asked for one by name, it says it is waiting for approval and how to give it, not "no
 * host named …; add one", which would send the user the wrong way.
 */
const { cleanups, dir, relayAt } = useRelayStack();

describe('a computer waiting for approval on its account', () => {
  it('asked for a host by name, says it waits for approval and how to approve it', async () => {
    const { url } = await relayAt(dir('relay'));
    const laptop = dir('laptop');
    const phone = dir('phone');
    expect((await signupCli(laptop, url, 'me@example.com')).code).toBe(0);
    const joined = await loginCli(phone, url, 'me@example.com', 'phone');
    expect(joined.code, joined.stderr).toBe(0);

    for (const args of [
      ['session', 'ls', 'mini'],
      ['session', 'new', 'mini', '--name', 'w', '--', 'sh'],
    ]) {
      const asked = await hangar(phone, args);
      expect(asked.code, `hangar ${args.join(' ')}`).not.toBe(0);
      expect(asked.stderr).toMatch(
        /this computer is waiting for approval on your account \(me@example\.com\).*approve it from a trusted one with: hangar devices approve "phone"/,
      );
      expect(asked.stderr).not.toContain('hangar hosts add');
    }

    // A trusted computer that does not know the name is told so, as before.
    const trusted = await hangar(laptop, ['session', 'ls', 'mini']);
    expect(trusted.code).toBe(3);
    expect(trusted.stderr).toMatch(/no host named "mini".*hangar hosts add mini/);
  });

  it('signing in to a relay older than approval codes is refused, saying so and what to do, and nothing is kept', async () => {
    const double = await RelayDouble.start();
    cleanups.push(() => double[Symbol.asyncDispose]());
    const relay = await relayAt(dir('relay'), 0, ['--public-url', double.url]);
    double.setUpstream(relay.url);
    const laptop = dir('laptop');
    const phone = dir('phone');
    expect((await signupCli(laptop, double.url, 'me@example.com')).code).toBe(0);
    // What a hangar-relay without devices.offer_tag answers (relay/src/api/routes.ts, unknown procedure).
    double.answers.set('devices.offer_tag', {
      status: 404,
      body: { error: { code: 'E_NOT_FOUND', message: 'no procedure "devices.offer_tag" on this relay' } },
    });
    const joined = await loginCli(phone, double.url, 'me@example.com', 'phone');
    expect(joined.code).not.toBe(0);
    expect(joined.stderr).toContain(
      `the relay at ${double.url} is older than this Hangar: it has no devices.offer_tag`,
    );
    expect(joined.stderr).toContain('upgrade hangar-relay to the release of this Hangar');
    expect(joined.stderr).toContain('This computer was not signed in');
    const account = await hangar(phone, ['account', '--json']);
    expect((JSON.parse(account.stdout) as { account: unknown }).account).toBeNull();
    expect(double.calls).toContain('auth.logout'); // the relay's login for it ended too
  });
});
