import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { billingFlags, secretFiles, testKeys } from './support/billing-fixture.js';
import { tempDir } from './support/relay-fixture.js';
import { relayCli } from './support/relay-process.js';

describe('billing mode at the command line', () => {
  it('hangar-relay doctor says whether billing is on or off; half the Stripe settings are refused by name', async () => {
    const data = tempDir('doctor-billing');
    const files = secretFiles(testKeys());
    try {
      expect((await relayCli(['migrate', '--data', data])).code).toBe(0);
      const off = await relayCli(['doctor', '--data', data]);
      expect(off.code).toBe(0);
      expect(off.stdout).toMatch(/ok\s+entitlement key: present/);
      expect(off.stdout).toMatch(/ok\s+billing: off: no Stripe keys, so nothing is metered/);

      const flags = billingFlags({ url: 'http://127.0.0.1:9' }, files);
      const on = await relayCli(['doctor', '--data', data, ...flags]);
      expect(on.code).toBe(0);
      expect(on.stdout).toMatch(
        /ok\s+billing: on \(Stripe test mode\): Pro price_pro_monthly, Team price_team_monthly/,
      );

      const half = flags.slice(0, 4); // the two secret files only
      const partial = await relayCli(['doctor', '--data', data, ...half]);
      expect(partial.code).toBe(1);
      expect(partial.stdout).toMatch(
        /FAIL\s+billing: billing needs all of its Stripe settings; missing --stripe-price-pro, --stripe-price-team, --stripe-meter-event-name/,
      );
      const serve = await relayCli(['serve', '--data', data, '--listen', '127.0.0.1:0', ...half]);
      expect(serve.code).toBe(2);
      expect(serve.stderr).toMatch(/missing --stripe-price-pro/);
    } finally {
      rmSync(data, { recursive: true, force: true });
      rmSync(files.dir, { recursive: true, force: true });
    }
  });
});
