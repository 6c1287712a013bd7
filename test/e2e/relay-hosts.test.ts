import { join } from 'node:path';
import Database from 'better-sqlite3';
import * as pty from 'node-pty';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RelayProcess } from '../../relay/test/support/relay-process.js';
import { dirFor, useCleanups } from '../support/cleanups.js';
import { attachAndEcho } from '../support/pty-client.js';
import { openWindow } from '../support/live-window.js';
import { BASH, HANGAR_BIN, hangar, pairWith } from '../support/processes.js';
import {
  enrollLine,
  hostsLs,
  loginCli,
  relayFor,
  signupCli,
  useRelayStack,
  waitForHost,
} from '../support/relay-stack.js';

/**
 * Hosts of an account, end to end on loopback: a real relay process, real agent processes, the
 * hangar command. The line `hangar hosts enroll-token` prints is run by a shell on the "host";
 * the host comes online in `hangar hosts ls`; the first session pairs with the line's secret;
 * a second computer gets in only once a trusted one approved it, and not after a revocation (a
 * relay that goes away: relay-unreachable.test.ts).
 */

const { cleanups, dir, hostMachine } = useRelayStack();

/**
 * One relay for the whole file: each test signs up an account of its own (its own email), and
 * what the relay keeps is per account, so no test sees what another did there.
 */
const shared = useCleanups(afterAll);
let stack: { relay: RelayProcess; relayData: string };
/** This test's account: an email no other test of the file signs up with. */
let email = '';
let accounts = 0;
beforeAll(async () => {
  const relayData = dirFor(shared, 'relay');
  stack = { relay: await relayFor(shared, relayData), relayData };
});
beforeEach(() => {
  email = `me-${++accounts}@example.com`;
});

/** Runs a command until it exits 0, or fails with its last output at the deadline. */
async function until(run: () => Promise<{ code: number; stderr: string }>, what: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await run();
    if (result.code === 0) return result;
    if (Date.now() > deadline) throw new Error(`${what} never succeeded: ${result.code} ${result.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** `hangar devices approve` in a terminal, typing `answer` when it asks for the code. */
async function approveInTerminal(home: string, device: string, answer: string) {
  const child = pty.spawn(process.execPath, [HANGAR_BIN, 'devices', 'approve', device], {
    cols: 200,
    rows: 30,
    env: { ...process.env, HANGAR_HOME: home } as Record<string, string>,
  });
  let output = '';
  const exited = new Promise<number>((resolve) => child.onExit(({ exitCode }) => resolve(exitCode)));
  child.onData((data) => {
    output += data;
    if (output.includes('Type the approval code') && answer !== '') {
      child.write(`${answer}\r`);
      answer = '';
    }
  });
  const timer = setTimeout(() => child.kill(), 20_000);
  const code = await exited;
  clearTimeout(timer);
  return { code, output };
}

const CODE = /approval code: ((?:[A-Z2-7]{4}-){7}[A-Z2-7]{4})/;

describe('hosts of an account', () => {
  it('the printed line enrolls a host: online in hangar hosts ls, the first session pairs with its secret, attach works', async () => {
    const { relay } = stack;
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, email)).code).toBe(0);
    const { shell, agent } = await hostMachine();

    const line = await enrollLine(laptop, 'mini');
    const started = Date.now();
    const ran = await shell.run(line);
    expect(ran.code, ran.stderr).toBe(0);
    const online = await waitForHost(laptop, 'mini', (h) => h.status === 'online');
    const enrolledIn = Date.now() - started;
    console.log(`[relay-hosts] enroll line run → host online in hangar hosts ls: ${enrolledIn} ms`);
    expect(online).toMatchObject({
      via: 'relay',
      address: `127.0.0.1:${agent.port}`,
      account: { presence: 'online' },
    });

    // The first use pairs with the secret in the line (the relay never saw it), then pins the host.
    const made = await hangar(laptop, ['session', 'new', 'mini', '--name', 'work', ...BASH]);
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    const linked = (await hostsLs(laptop)).find((h) => h.name === 'mini')!;
    expect(linked).toMatchObject({ status: 'online', link: 'online', via: 'direct' });
    const db = new Database(join(laptop, 'hangar.db'), { readonly: true });
    expect(db.prepare('SELECT COUNT(*) AS n FROM enrollment_secrets').get()).toEqual({ n: 0 });
    db.close();

    await attachAndEcho(laptop, 'mini', 'work', cleanups);
  });

  it("--install prints the line for a new machine: the relay's installer, with the same kind of token and the name", async () => {
    const { relay } = stack;
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, email)).code).toBe(0);
    const made = await hangar(laptop, ['hosts', 'enroll-token', '--name', 'mini', '--install']);
    expect(made.code, made.stderr).toBe(0);
    const line = made.stdout.trimEnd();
    expect(line).toMatch(/^curl -fsSL (\S+)\/install\.sh \| sh -s -- --name mini --token hgr1_\S+$/);
    // The script that line fetches is the one the relay serves (install-script.test.ts checks its bytes).
    const url = /^curl -fsSL (\S+) /.exec(line)![1]!;
    expect(url).toBe(`${relay.url}/install.sh`);
    const served = await fetch(url);
    expect(served.status).toBe(200);
    expect(await served.text()).toMatch(/^#!\/bin\/sh/);
  });

  it('a host paired with a code and enrolled too is one entry, under the name given here', async () => {
    const { relay } = stack;
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, email)).code).toBe(0);
    const { shell, agent } = await hostMachine();
    await pairWith(laptop, 'box', agent);
    expect((await shell.run(await enrollLine(laptop, 'vps'))).code).toBe(0);
    const box = await waitForHost(laptop, 'box', (h) => h.account?.presence === 'online');
    expect(box).toMatchObject({ status: 'online', via: 'direct', account: { name: 'vps' } });
    expect((await hostsLs(laptop)).map((h) => h.name)).toEqual(['box']);

    // Removing it forgets it here and takes it out of the account: it does not come back as "vps".
    const removed = await hangar(laptop, ['hosts', 'rm', 'box']);
    expect(removed).toMatchObject({ code: 0, stdout: 'removed "box" here and from your account\n' });
    expect(await hostsLs(laptop)).toEqual([]);
  });

  it('an account host whose name is taken here is listed as mini-2, and that name reaches it', async () => {
    const { relay } = stack;
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, email)).code).toBe(0);
    const paired = await hostMachine();
    await pairWith(laptop, 'mini', paired.agent);
    const enrolled = await hostMachine();
    expect((await enrolled.shell.run(await enrollLine(laptop, 'mini'))).code).toBe(0);
    const other = await waitForHost(laptop, 'mini-2', (h) => h.status === 'online');
    expect(other).toMatchObject({
      via: 'relay',
      account: { name: 'mini' },
      address: `127.0.0.1:${enrolled.agent.port}`,
    });
    expect((await hostsLs(laptop)).find((h) => h.name === 'mini')).toMatchObject({ via: 'direct', account: null });

    const made = await hangar(laptop, ['session', 'new', 'mini-2', '--name', 'there', '--', 'sleep', '60']);
    expect(made.code, made.stderr).toBe(0);
    expect((await hostsLs(laptop)).map((h) => [h.name, h.via])).toEqual([
      ['mini', 'direct'],
      ['mini-2', 'direct'],
    ]);
    const listed = JSON.parse((await hangar(laptop, ['session', 'ls', 'mini-2', '--json'])).stdout) as {
      sessions: { name: string }[];
    }[];
    expect(listed[0]!.sessions.map((x) => x.name)).toEqual(['there']);
  });

  it('a second computer is refused until a trusted one approves it (typing its code), then let in, then shut out by a revocation', async () => {
    const { relay } = stack;
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, email)).code).toBe(0);
    const { shell } = await hostMachine();
    expect((await shell.run(await enrollLine(laptop, 'mini'))).code).toBe(0);
    await waitForHost(laptop, 'mini', (h) => h.status === 'online');
    expect((await hangar(laptop, ['session', 'new', 'mini', '--name', 'mine', '--', 'sleep', '600'])).code).toBe(0);

    const phone = dir('phone');
    const joined = await loginCli(phone, relay.url, email, 'phone');
    expect(joined.code, joined.stderr).toBe(0);
    // Its core closes as login ends: the check for an approval it began then is cut short, not news.
    expect(joined.stderr).not.toContain('could not vouch');
    const code = CODE.exec(joined.stdout)![1]!;
    // `hangar account` while it waits: its core closes as it answers, cutting short the check for an
    // approval it began; that check ends quietly (it threw on the closed database, now and then).
    for (let i = 0; i < 4; i++) {
      const status = await hangar(phone, ['account']);
      expect(status.code, status.stderr).toBe(0);
      expect(status.stderr).toBe('');
    }
    // The phone's window is open all along. Knowing the password is not enough to see the account:
    // until a trusted computer approves it, the relay shows it none of the hosts (nor their addresses).
    const phoneWindow = await openWindow(phone, cleanups);
    expect((await hostsLs(phone)).map((h) => h.name)).not.toContain('mini');
    // Asked for the host by name, it says it waits for approval (the relay hides the account's hosts).
    const refused = await hangar(phone, ['session', 'ls', 'mini']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('this computer is waiting for approval on your account');

    // Approving asks for the code the phone shows; a wrong one approves nothing.
    const wrong = await approveInTerminal(laptop, 'phone', 'AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH');
    expect(wrong.code).toBe(1);
    expect(wrong.output).toMatch(/the code given is not the one "phone" shows.*Nothing was approved/);
    const typo = await hangar(laptop, ['devices', 'approve', 'phone', '--code', 'ABCD-EFGH']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/not an approval code/);
    expect((await hangar(phone, ['session', 'ls', 'mini'])).stderr).toContain('waiting for approval');

    const approved = await approveInTerminal(laptop, 'phone', code.toLowerCase());
    expect(approved.code, approved.output).toBe(0);
    expect(approved.output).toMatch(/approved "phone"/);
    expect(approved.output).toMatch(/handed the keys of the hosts this computer pinned/);
    const devices = JSON.parse((await hangar(laptop, ['devices', 'ls', '--json'])).stdout) as {
      name: string;
      status: string;
      approved_by: { name: string } | null;
    }[];
    expect(devices.find((d) => d.name === 'phone')).toMatchObject({
      status: 'endorsed',
      approved_by: { name: 'laptop' },
    });
    // The relay tells the phone's window it was approved, then shows it the hosts: it links by itself.
    await phoneWindow.until((hosts) => hosts.find((h) => h.name === 'mini')?.status === 'online');
    // The host verifies the endorsement when the relay brings it: the phone gets in.
    await until(() => hangar(phone, ['session', 'new', 'mini', '--name', 'phones', '--', 'sleep', '600']), 'the phone');
    expect((await hangar(phone, ['account', '--json'])).stdout).toMatch(/"status": "endorsed"/);

    const revoked = await hangar(laptop, ['devices', 'revoke', 'phone']);
    expect(revoked.code, revoked.stderr).toBe(0);
    const shutOut = Date.now() + 15_000;
    let last = await hangar(phone, ['session', 'ls', 'mini']);
    while (last.code === 0 && Date.now() < shutOut) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      last = await hangar(phone, ['session', 'ls', 'mini']);
    }
    expect(last.code).toBe(4);
    // Asked, the phone (its window open: the socket told it) says it was revoked, not the trust it had.
    const standing = await hangar(phone, ['account']);
    expect(standing.stdout).toContain('status: revoked: hosts refuse it');
    // The laptop, which nobody revoked, goes on.
    expect((await hangar(laptop, ['session', 'ls', 'mini'])).code).toBe(0);
  });

  it("a computer approved without a code (--yes) takes the hosts' keys on the relay's word, and says so", async () => {
    const { relay } = stack;
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, email)).code).toBe(0);
    const { shell } = await hostMachine();
    expect((await shell.run(await enrollLine(laptop, 'mini'))).code).toBe(0);
    await waitForHost(laptop, 'mini', (h) => h.status === 'online');
    expect((await hangar(laptop, ['session', 'ls', 'mini'])).code).toBe(0);

    const phone = dir('phone');
    const joined = await loginCli(phone, relay.url, email, 'phone');
    expect(joined.code, joined.stderr).toBe(0);
    // Said before the choice is made: without the code, the keys will be the relay's word.
    expect(joined.stdout).toMatch(/approved without it, with --yes, this computer takes .* on the relay's word/);
    const approved = await hangar(laptop, ['devices', 'approve', 'phone', '--yes']);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toMatch(/approved without a code: it takes the account's hosts' keys on the relay's word/);
    await until(() => hangar(phone, ['session', 'ls', 'mini']), 'the phone');
    expect((await hostsLs(phone)).find((h) => h.name === 'mini')).toMatchObject({ keys_from_relay: true });
    expect((await hangar(phone, ['hosts', 'ls'])).stdout).toMatch(/mini \(keys: the relay's word\)/);
    expect((await hangar(phone, ['account'])).stdout).toMatch(/without a code: its hosts' keys are the relay's word/);
    // The laptop pinned mini itself: nothing of that on it.
    expect((await hostsLs(laptop)).find((h) => h.name === 'mini')).toMatchObject({ keys_from_relay: false });
  });

  it('a host paired with a code and enrolled later is vouched for by the window linked to it: a computer approved with a code then takes it', async () => {
    const { relay } = stack;
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, email)).code).toBe(0);
    const phone = dir('phone');
    const joined = await loginCli(phone, relay.url, email, 'phone');
    const approved = await hangar(laptop, ['devices', 'approve', 'phone', '--code', CODE.exec(joined.stdout)![1]!]);
    expect(approved.code, approved.stderr).toBe(0);

    // Paired with a code on the laptop, then enrolled: no first link, so no vouch from the command.
    const { shell, agent } = await hostMachine();
    await pairWith(laptop, 'box', agent);
    expect((await shell.run(await enrollLine(laptop, 'vps'))).code).toBe(0);
    await waitForHost(laptop, 'box', (h) => h.account?.presence === 'online');
    const refused = await hangar(phone, ['session', 'ls', 'vps']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/no computer this one trusts vouched for/);

    // The laptop's window links to its paired hosts, and vouches for this one at the relay.
    await openWindow(laptop, cleanups);
    await until(() => hangar(phone, ['session', 'ls', 'vps']), 'the phone', 20_000);
  });

  it("a computer approved with --yes never vouches for a host whose keys it took on the relay's word", async () => {
    const { relay, relayData } = stack;
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, email)).code).toBe(0);
    const mini = await hostMachine();
    expect((await mini.shell.run(await enrollLine(laptop, 'mini'))).code).toBe(0);
    await waitForHost(laptop, 'mini', (h) => h.status === 'online');
    expect((await hangar(laptop, ['session', 'ls', 'mini'])).code).toBe(0);

    const phone = dir('phone');
    expect((await loginCli(phone, relay.url, email, 'phone')).code).toBe(0);
    expect((await hangar(laptop, ['devices', 'approve', 'phone', '--yes'])).code).toBe(0);
    await until(() => hangar(phone, ['session', 'ls', 'mini']), 'the phone');
    // Linked again from its registry: the pinned record is what a vouch would be made from.
    expect((await hangar(phone, ['session', 'ls', 'mini'])).code).toBe(0);

    // The relay is shared by the file's tests: this account's host of that name.
    const accountId = (
      JSON.parse((await hangar(laptop, ['account', '--json'])).stdout) as { account: { account_id: string } }
    ).account.account_id;
    const vouchers = (name: string): string[] => {
      const db = new Database(join(relayData, 'relay.db'), { readonly: true });
      try {
        const row = db
          .prepare('SELECT vouches_json FROM hosts WHERE account_id = ? AND name = ?')
          .get(accountId, name) as { vouches_json: string | null } | undefined;
        return (JSON.parse(row?.vouches_json ?? '[]') as { signer_device_key: string }[]).map(
          (v) => v.signer_device_key,
        );
      } finally {
        db.close();
      }
    };
    expect(vouchers('mini')).toHaveLength(1); // the laptop's, from its first link
    // The phone's window links to the hosts it pinned, and would vouch for those the account lists.
    const phoneWindow = await openWindow(phone, cleanups);
    await phoneWindow.until((hosts) => hosts.find((h) => h.name === 'mini')?.status === 'online');
    expect((await hangar(phone, ['session', 'ls', 'mini'])).code).toBe(0);
    expect(vouchers('mini')).toHaveLength(1);
  });
});
