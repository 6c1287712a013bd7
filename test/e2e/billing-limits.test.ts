import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  entitlementLogged,
  hangarIn,
  reportMinutes,
  trialAccountWithHost,
  waitUntil,
} from '../support/billing-stack.js';
import { useCleanups } from '../support/cleanups.js';
import { hangar } from '../support/processes.js';

/**
 * What a plan allows, seen from the hangar command: a relay with billing on (in this process, so
 * its clock can jump a week; Stripe is the stand-in), a real agent enrolled in the account and the
 * CLI. Build jobs are refused with what to do when the entitlement says so or has expired;
 * terminals never are; and a relay that is down stops no build while the last entitlement holds.
 */

const cleanups = useCleanups();

const DAY = 24 * 60 * 60_000;

async function terminalWorks(laptop: string, name: string): Promise<void> {
  const session = await hangar(laptop, ['session', 'new', 'mini', '--name', name, '--', 'sleep', '60']);
  expect(session.code, session.stderr).toBe(0);
}

describe('what the plan allows', { timeout: 180_000 }, () => {
  it('a trial shows in hangar account; used-up minutes, then the trial ending, refuse build jobs with what to do, never terminals', async () => {
    const { billing, laptop, project, host, hostId } = await trialAccountWithHost(cleanups);
    const start = await hangar(laptop, ['account']);
    expect(start.stdout).toMatch(/plan: Trial \(7 days of Pro\), 7 days left \(ends \d{4}-\d{2}-\d{2}\)/);
    expect(start.stdout).toContain('build minutes this period: 0 used of 300 included');
    expect(start.stdout).toContain('next invoice: none');

    const job = await hangarIn(laptop, project, ['run', '--host', 'mini', '-c', 'true']);
    expect(job.code, job.stderr).toBe(0);
    // A job shorter than a (1 s) minute counts one; preparing it may take a second one.
    const used = await waitUntil('the job’s minutes counted', async () => {
      const counted = /build minutes this period: (\d+) used of 300/.exec((await hangar(laptop, ['account'])).stdout);
      return counted !== null && Number(counted[1]) > 0 ? Number(counted[1]) : undefined;
    });
    expect(used).toBeLessThanOrEqual(2);

    // The trial's 300 minutes used up (a long job's worth, reported with the host's key).
    await reportMinutes(billing, host, hostId, 300 - used);
    await entitlementLogged(host, '"reason":"minutes_used_up"');
    const refused = await hangarIn(laptop, project, ['run', '--host', 'mini', '-c', 'true']);
    // A limit (exit 6), not a failure of the job or of Hangar.
    expect(refused.code).toBe(6);
    expect(refused.stderr).toContain("this period's build minutes are used up");
    expect(refused.stderr).toContain('hangar account upgrade pro');
    await terminalWorks(laptop, 'still');
    expect((await hangar(laptop, ['account'])).stdout).toContain("build jobs refused: this period's build minutes");

    // A week later the trial is over: no free tier.
    billing.clock.advance(8 * DAY);
    await entitlementLogged(host, '"reason":"trial_ended"');
    const ended = await hangarIn(laptop, project, ['run', '--host', 'mini', '-c', 'true']);
    expect(ended.code).toBe(6);
    expect(ended.stderr).toContain(
      'the 7-day trial has ended; upgrade to keep running build jobs: hangar account upgrade pro',
    );
    await terminalWorks(laptop, 'after-trial');
    const account = await hangar(laptop, ['account']);
    expect(account.stdout).toMatch(/plan: none: the trial ended \d{4}-\d{2}-\d{2}/);
    expect(account.stdout).toContain('build jobs refused: the 7-day trial has ended');
  });

  it('with the relay down, build jobs run on the last entitlement; once it has expired they are refused, terminals are not', async () => {
    const { billing, laptop, project, host, hostId, accountId } = await trialAccountWithHost(cleanups);
    // What the relay would have signed a day and an hour ago: expired now.
    billing.clock.advance(-(DAY + 60 * 60_000));
    const stale = await billing.relay.relay.context.billing.entitlement(accountId, hostId);
    billing.clock.offset = 0;

    await billing.stop();
    const job = await hangarIn(laptop, project, ['run', '--host', 'mini', '-c', 'echo built']);
    expect(job.code, job.stderr).toBe(0);
    expect(job.stdout).toContain('built');

    // The host stays away from the relay past its entitlement's day.
    await host.agent.stop();
    const db = new Database(join(host.shell.agentData, 'agent.db'));
    try {
      expect(db.prepare('UPDATE relay_entitlement SET entitlement = ?').run(JSON.stringify(stale)).changes).toBe(1);
    } finally {
      db.close();
    }
    await host.restart();
    const refused = await hangarIn(laptop, project, ['run', '--host', 'mini', '-c', 'true']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(
      /the entitlement expired at \S+ and the relay has not renewed it; reconnect this host/,
    );
    await terminalWorks(laptop, 'offline-shell');
  });
});
