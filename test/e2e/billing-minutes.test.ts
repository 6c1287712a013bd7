import { describe, expect, it } from 'vitest';
import {
  billingFlags,
  secretFiles,
  startStandIn,
  testKeys,
  type StripeStandIn,
} from '../../relay/test/support/billing-fixture.js';
import type { RelayProcess } from '../../relay/test/support/relay-process.js';
import { enrolledHost, hangarIn, meteredKeys, pendingRecords, waitUntil } from '../support/billing-stack.js';
import { dirFor, useCleanups } from '../support/cleanups.js';
import { hangar, removeDir } from '../support/processes.js';
import { relayFor, signupCli } from '../support/relay-stack.js';

/**
 * Build minutes end to end: a real `hangar-relay serve` with billing on against the Stripe
 * stand-in (tests never reach Stripe), a real agent enrolled in a Pro account running real short
 * jobs (a billed minute is 1 s here: --billing-minute-ms), and the meter events the stand-in
 * received. The relay is killed while jobs run and comes back: every minute arrives once.
 */

const cleanups = useCleanups();

const MINUTE_MS = 1_000;

async function billedRelay(standIn: StripeStandIn, keys: ReturnType<typeof testKeys>, data: string, port = 0) {
  const files = secretFiles(keys);
  cleanups.push(() => removeDir(files.dir));
  const relay = await relayFor(cleanups, data, port, [
    ...billingFlags(standIn, files),
    '--billing-minute-ms',
    String(MINUTE_MS),
  ]);
  standIn.setWebhookUrl(`${relay.url}/v1/stripe/webhook`);
  return relay;
}

/** Meter events the stand-in accepted with these identifiers (it refuses a second one per identifier). */
function atStripe(standIn: StripeStandIn, keys: string[]): number {
  return keys.filter((key) => standIn.meterEvents.has(key)).length;
}

describe('build minutes from an enrolled host', () => {
  it(
    'each started minute of each job reaches Stripe once, also the ones run while the relay was down',
    { timeout: 180_000 },
    async () => {
      const keys = testKeys();
      const standIn = await startStandIn(keys);
      cleanups.push(() => standIn.close());
      const relayData = dirFor(cleanups, 'relay');
      let relay: RelayProcess = await billedRelay(standIn, keys, relayData);
      const laptop = dirFor(cleanups, 'laptop');
      const project = dirFor(cleanups, 'project');
      expect((await signupCli(laptop, relay.url, 'owner@example.com')).code).toBe(0);

      // Upgrade through the CLI: the URL it prints is the stand-in's Checkout page, "paid" there.
      const upgrade = await hangar(laptop, ['account', 'upgrade', 'pro', '--no-open']);
      expect(upgrade.code, upgrade.stderr).toBe(0);
      await standIn.completeCheckout(upgrade.stdout.trim());
      const shown = await waitUntil('plan Pro in hangar account', async () => {
        const out = await hangar(laptop, ['account']);
        return out.stdout.includes('plan: Pro') ? out.stdout : undefined;
      });
      expect(shown).toMatch(/build minutes this period: 0 used of 300 included/);
      expect(shown).toMatch(/next invoice: \d{4}-\d{2}-\d{2}/);
      const manage = await hangar(laptop, ['account', 'manage', '--no-open']);
      expect(manage.code, manage.stderr).toBe(0);
      expect(manage.stdout.trim().startsWith(`${new URL(standIn.url).origin}/`)).toBe(true);

      const host = await enrolledHost(cleanups, laptop, 'mini');
      const dataDir = host.shell.agentData;
      const job = await hangarIn(laptop, project, ['run', '--host', 'mini', '-c', 'sleep 2.3']);
      expect(job.code, job.stderr).toBe(0);
      const firstKeys = await meteredKeys(dataDir);
      // 2.3 s of sleep plus the attempt's preparation: at least 3 started 1-s minutes.
      expect(firstKeys.length).toBeGreaterThanOrEqual(3);
      const jobEnded = Date.now();
      await waitUntil('the first job’s minutes at Stripe', () => atStripe(standIn, firstKeys) === firstKeys.length);
      console.log(`[billing] job ended → its ${firstKeys.length} minutes at Stripe: ${Date.now() - jobEnded} ms`);
      await waitUntil('acknowledged records forgotten by the agent', () => pendingRecords(dataDir) === 0);

      // The relay goes away (kill -9); the laptop still reaches the host it linked to, and jobs run.
      const port = relay.port;
      await relay.crash();
      const offline = await hangarIn(laptop, project, ['run', '--host', 'mini', '-c', 'sleep 1.5']);
      expect(offline.code, offline.stderr).toBe(0);
      const allKeys = await meteredKeys(dataDir);
      const offlineKeys = allKeys.filter((key) => !firstKeys.includes(key));
      expect(offlineKeys.length).toBeGreaterThanOrEqual(2);
      expect(pendingRecords(dataDir)).toBe(offlineKeys.length); // kept in agent.db, none at Stripe yet
      expect(atStripe(standIn, offlineKeys)).toBe(0);

      relay = await billedRelay(standIn, keys, relayData, port);
      const back = Date.now();
      await waitUntil(
        'the offline minutes at Stripe',
        () => atStripe(standIn, offlineKeys) === offlineKeys.length,
        30_000,
      );
      console.log(
        `[billing] relay back → the ${offlineKeys.length} minutes run while it was down at Stripe: ${Date.now() - back} ms`,
      );
      await waitUntil('all acknowledged', () => pendingRecords(dataDir) === 0);
      await standIn.idle();
      // Once each: one accepted event per minute the agent counted, and nothing else from this account.
      const meterRequests = standIn.requests.filter((r: { path: string }) => r.path === '/v1/billing/meter_events');
      expect(standIn.meterEvents.size).toBe(allKeys.length);
      expect(meterRequests.length).toBeGreaterThanOrEqual(allKeys.length);
      const account = await hangar(laptop, ['account']);
      expect(account.stdout).toContain(`build minutes this period: ${allKeys.length} used of 300 included`);
    },
  );
});
