import { generateKeyPairSync, sign } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeStatement, toHex, type Ed25519Signer, type StatementKind } from '@hangar/shared';
import { deviceSigner, loadOrCreateDeviceKey } from '../../electron/core/src/identity/device-key.js';
import { openWindow } from '../support/live-window.js';
import { dirFor, useCleanups } from '../support/cleanups.js';
import { hangar, pairWith, type CliResult } from '../support/processes.js';
import { RelayDouble } from '../support/relay-double.js';
import { enrollLine, loginCli, relayFor, signupCli, useRelayStack, waitForHost } from '../support/relay-stack.js';

/**
 * Trust follows the account's endorsement chain (relay/PROTOCOL.md "Trust follows the chain"), end
 * to end: a real relay (behind a test double where the relay turns hostile), real agents, the
 * hangar command. A host another computer enrolled lets in the computer that approved that one, and
 * the devices it approved before the host existed; a revoked device stays out; what a key nobody
 * vouched for signs changes nothing.
 */

const { cleanups, dir, hostMachine } = useRelayStack();

/**
 * Two relays for the whole file: a plain one, and one behind a double for the tests where it
 * turns hostile. Each test signs up an account of its own (its own email), and what a relay keeps
 * is per account; what a test tells the double to do is undone before the next.
 */
const shared = useCleanups(afterAll);
let relay: { url: string };
let double: RelayDouble;
/** This test's account: an email no other test of the file signs up with. */
let email = '';
let accounts = 0;
beforeAll(async () => {
  relay = await relayFor(shared, dirFor(shared, 'relay'));
  double = await RelayDouble.start();
  shared.push(() => double[Symbol.asyncDispose]());
  const behind = await relayFor(shared, dirFor(shared, 'relay'), 0, ['--public-url', double.url]);
  double.setUpstream(behind.url);
});
beforeEach(() => {
  double.dropCall = undefined;
  double.calls.splice(0);
  email = `me-${++accounts}@example.com`;
});
/** What hangar login prints on a computer that waits for approval. */
const CODE = /approval code: ((?:[A-Z2-7]{4}-){7}[A-Z2-7]{4})/;

/** Runs a command until it exits 0, or fails with its last output at the deadline. */
async function until(run: () => Promise<CliResult>, what: string, timeoutMs = 20_000): Promise<CliResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await run();
    if (result.code === 0) return result;
    if (Date.now() > deadline) throw new Error(`${what} never succeeded: ${result.code} ${result.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** A computer that logs in to the account and is approved from `approver` with the code it shows. */
async function approvedComputer(approver: string, relayUrl: string, name: string): Promise<string> {
  const home = dir(name);
  const joined = await loginCli(home, relayUrl, email, name);
  expect(joined.code, joined.stderr).toBe(0);
  const approved = await hangar(approver, ['devices', 'approve', name, '--code', CODE.exec(joined.stdout)![1]!]);
  expect(approved.code, approved.stderr).toBe(0);
  return home;
}

/** The desk enrolls a new host "mini" and links to it first (the host pins the desk). */
async function hostEnrolledBy(desk: string) {
  const mini = await hostMachine();
  const ran = await mini.shell.run(await enrollLine(desk, 'mini'));
  expect(ran.code, ran.stderr).toBe(0);
  await waitForHost(desk, 'mini', (h) => h.status === 'online');
  const linked = await hangar(desk, ['session', 'new', 'mini', '--name', 'desk', '--', 'sleep', '600']);
  expect(linked.code, linked.stderr).toBe(0);
  return mini;
}

const sessionsOn = (home: string) => hangar(home, ['session', 'ls', 'mini']);

function fakeKey(): Ed25519Signer {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(12));
  return { publicKey: raw, sign: (m) => new Uint8Array(sign(null, m, privateKey)) };
}

describe('trust follows the chain', () => {
  it('a host a second computer enrolled lets in the computer that approved it, and the devices that one approved before the host existed', async () => {
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, email)).code).toBe(0);
    const phone = await approvedComputer(laptop, relay.url, 'phone');
    const desk = await approvedComputer(laptop, relay.url, 'desk');
    await hostEnrolledBy(desk);

    // The laptop never linked to mini: mini pinned the desk, which vouched back for the laptop.
    const made = await until(
      () => hangar(laptop, ['session', 'new', 'mini', '--name', 'laptop', '--', 'sleep', '600']),
      'a session on mini from the laptop',
    );
    expect(made.stderr).toBe('');
    // The phone was approved by the laptop before mini existed.
    const listed = await until(() => sessionsOn(phone), 'listing mini from the phone');
    expect(listed.stdout).toMatch(/laptop/);
  });

  it('a computer whose trust was settled before computers vouched back does so once, at its next enrollment token', async () => {
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, email)).code).toBe(0);
    const desk = await approvedComputer(laptop, relay.url, 'desk');
    // What an older Hangar left in the desk's database: the bundle opened (its keys trusted, the
    // approver's first), the code forgotten, and no vouch made.
    const db = new Database(join(desk, 'hangar.db'));
    try {
      const accountId = (db.prepare('SELECT account_id FROM relay_account').get() as { account_id: string }).account_id;
      db.prepare(
        `INSERT INTO account_trust (account_id, approval_code, host_trust, updated_at, vouched_back_at)
         VALUES (?, NULL, 'bundle', 1, NULL)
         ON CONFLICT (account_id) DO UPDATE SET approval_code = NULL, host_trust = 'bundle', vouched_back_at = NULL`,
      ).run(accountId);
      db.prepare(
        `INSERT INTO trusted_keys (account_id, kind, key, name, cert_fingerprint) VALUES (?, 'device', ?, '', NULL)`,
      ).run(accountId, (await loadOrCreateDeviceKey(laptop)).publicKeyHex);
    } finally {
      db.close();
    }
    await hostEnrolledBy(desk);
    await until(() => sessionsOn(laptop), 'listing mini from the laptop');
  });

  it('a computer whose vouch back was dropped by the relay makes it when its window next reaches the relay', async () => {
    const laptop = dir('laptop');
    expect((await signupCli(laptop, double.url, email)).code).toBe(0);
    const desk = await approvedComputer(laptop, double.url, 'desk');
    const deskKey = (await loadOrCreateDeviceKey(desk)).publicKeyHex;
    const vouchedBackAt = () => {
      const db = new Database(join(desk, 'hangar.db'), { readonly: true });
      try {
        return (db.prepare('SELECT vouched_back_at FROM account_trust').get() as { vouched_back_at: number | null })
          ?.vouched_back_at;
      } finally {
        db.close();
      }
    };
    // The relay goes away just as the desk sends its endorsement of the laptop, every time.
    const signatures = new Set<string>();
    const fromDesk = (method: string, body: string) => {
      if (method !== 'devices.endorse' || !body.includes(deskKey)) return false;
      signatures.add((JSON.parse(body) as { statement: { signature: string } }).statement.signature);
      return true;
    };
    double.dropCall = fromDesk;
    const made = await hangar(desk, ['hosts', 'enroll-token', '--name', 'mini']);
    expect(made.code, made.stderr).toBe(0); // the token is made all the same
    const tried = double.calls.filter((m) => m === 'devices.endorse').length;
    expect(tried).toBeGreaterThan(0);
    expect(vouchedBackAt() ?? null).toBeNull();

    // The relay is back; the desk's window reaches it and vouches without being asked for a host.
    double.dropCall = (method, body) => {
      fromDesk(method, body); // noted, passed on
      return false;
    };
    await openWindow(desk, cleanups);
    const deadline = Date.now() + 15_000;
    while ((vouchedBackAt() ?? null) === null) {
      if (Date.now() > deadline) throw new Error(`the desk never vouched back: ${double.calls.join(' ')}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(double.calls.filter((m) => m === 'devices.endorse').length).toBeGreaterThan(tried);
    // Every try was the same statement: a relay that comes and goes gets one signature, not one per try.
    expect(signatures.size).toBe(1);
  });

  it('a revoked device stays out though a trusted computer endorses it again, and what a key nobody vouched for signs changes nothing', async () => {
    const laptop = dir('laptop');
    expect((await signupCli(laptop, double.url, email)).code).toBe(0);
    const old = await approvedComputer(laptop, double.url, 'old-phone');
    const revoked = await hangar(laptop, ['devices', 'revoke', 'old-phone']);
    expect(revoked.code, revoked.stderr).toBe(0);
    const desk = await approvedComputer(laptop, double.url, 'desk');
    const mini = await hostEnrolledBy(desk);
    await until(() => sessionsOn(laptop), 'listing mini from the laptop');

    const accountId = (
      JSON.parse((await hangar(laptop, ['account', '--json'])).stdout) as { account: { account_id: string } }
    ).account.account_id;
    const key = async (home: string) => (await loadOrCreateDeviceKey(home)).publicKeyHex;
    const statement = (signer: Ed25519Signer, kind: StatementKind, subject: string, name: string, seq: number) => ({
      ...makeStatement(signer, {
        kind,
        account_id: accountId,
        subject_device_key: subject,
        subject_name: name,
        issued_at: Date.now(),
      }),
      seq,
      stored_at: Date.now(),
    });
    const deskSigner = deviceSigner((await loadOrCreateDeviceKey(desk)).privateKey);
    const relayKey = fakeKey();
    const relayOther = fakeKey();
    // The relay refuses an endorsement of a revoked device; a hostile one pushes it anyway (signed by
    // the desk, which mini trusts). And statements signed by keys of its own: one revoking the laptop,
    // one endorsing a second key of its own, and that key endorsing the old phone.
    double.sendToAgents({
      type: 'statements',
      statements: [
        statement(deskSigner, 'endorse', await key(old), 'old-phone', 5000),
        statement(relayKey, 'revoke', await key(laptop), 'laptop', 5001),
        statement(relayKey, 'endorse', toHex(relayOther.publicKey), 'evil', 5002),
        statement(relayOther, 'endorse', await key(old), 'old-phone', 5003),
      ],
    });
    const deadline = Date.now() + 15_000;
    while (!/"seq":5003[^\n]*kept a statement|kept a statement[^\n]*"seq":5003/.test(mini.agent.stderr())) {
      if (Date.now() > deadline) throw new Error(`the agent never took the statements: ${mini.agent.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(mini.agent.stderr()).toMatch(/the device was revoked, and a revoked key stays revoked/);

    // The laptop still gets in; the old phone is not pinned, nor the relay's keys.
    expect((await sessionsOn(laptop)).code).toBe(0);
    const db = new Database(join(mini.shell.agentData, 'agent.db'), { readonly: true });
    try {
      const pinned = (db.prepare('SELECT public_key FROM paired_devices').all() as { public_key: string }[]).map(
        (row) => row.public_key,
      );
      expect(pinned.sort()).toEqual([await key(desk), await key(laptop)].sort());
      expect(db.prepare('SELECT COUNT(*) AS n FROM revoked_devices').get()).toEqual({ n: 1 });
    } finally {
      db.close();
    }
  });

  it('a stolen laptop revoked takes back what it approved before: the host unpins the devices only it vouched for, the relay lists them as waiting, and one approved again brings back what it approved', async () => {
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, email)).code).toBe(0);
    const mini = await hostEnrolledBy(laptop);
    const stolen = await approvedComputer(laptop, relay.url, 'stolen');
    const friend = await approvedComputer(stolen, relay.url, 'friend');
    const watch = await approvedComputer(friend, relay.url, 'watch');
    const key = async (home: string) => (await loadOrCreateDeviceKey(home)).publicKeyHex;
    const pinnedOnMini = () => {
      const db = new Database(join(mini.shell.agentData, 'agent.db'), { readonly: true });
      try {
        return (db.prepare('SELECT public_key FROM paired_devices').all() as { public_key: string }[])
          .map((row) => row.public_key)
          .sort();
      } finally {
        db.close();
      }
    };
    const waitFor = async (what: string, done: () => boolean) => {
      const deadline = Date.now() + 15_000;
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`${what}: ${mini.agent.stderr()}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const friendKey = await key(friend);
    const watchKey = await key(watch);
    await waitFor('mini never pinned the watch the friend approved', () => pinnedOnMini().includes(watchKey));

    const revoked = await hangar(laptop, ['devices', 'revoke', 'stolen']);
    expect(revoked.code, revoked.stderr).toBe(0);
    // The revocation says at once which computers it shut out with the stolen one, and what to do.
    expect(revoked.stdout).toContain('friend: approved before by stolen (revoked)');
    expect(revoked.stdout).toContain('watch: approved before by friend');
    // The stolen laptop, no window open, asked: it says it was revoked (the relay's word), not the
    // trust it had before.
    expect((await hangar(stolen, ['account'])).stdout).toContain('status: revoked: hosts refuse it');
    await waitFor('mini never unpinned what the stolen laptop vouched for', () => !pinnedOnMini().includes(friendKey));
    await waitFor('mini never unpinned the watch', () => !pinnedOnMini().includes(watchKey));
    expect(pinnedOnMini()).toEqual([await key(laptop)]);
    expect(mini.agent.stderr()).toMatch(/unpinned a device no trusted device vouches for any more/);
    // The relay's list agrees with the host: both wait for approval again, and the list says why.
    const listed = await hangar(laptop, ['devices', 'ls']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/^friend\s+waiting for approval/m);
    expect(listed.stdout).toMatch(/^watch\s+waiting for approval/m);
    expect(listed.stdout).toContain('friend: approved before by stolen (revoked)');
    expect(listed.stdout).toContain('hangar devices approve friend --yes');

    // Unpinned, not revoked: the user vouches for it again from a trusted computer, as the log says;
    // what it had approved (the watch) comes back with it, on the host and in the relay's list.
    const again = await hangar(laptop, ['devices', 'approve', 'friend', '--yes']);
    expect(again.code, again.stderr).toBe(0);
    await waitFor('mini never pinned the friend approved again', () => pinnedOnMini().includes(friendKey));
    await waitFor('mini never pinned again the watch the friend had approved', () => pinnedOnMini().includes(watchKey));
    const relisted = await hangar(laptop, ['devices', 'ls']);
    expect(relisted.stdout).toMatch(/^watch\s+trusted/m);
    expect(relisted.stdout).not.toContain('approved before by');
  }, 120_000); // four computers approved one by another, a host, two waits for the agent: ~30 s alone

  it('a window vouches for a host it paired with a code though another computer enrolled it: a computer approved with a code then takes it', async () => {
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, email)).code).toBe(0);
    const phone = await approvedComputer(laptop, relay.url, 'phone');
    const desk = await approvedComputer(laptop, relay.url, 'desk');
    // The laptop pairs with the host by a code; the desk enrolls it and never links to it (no vouch).
    const { shell, agent } = await hostMachine();
    await pairWith(laptop, 'box', agent);
    const ran = await shell.run(await enrollLine(desk, 'vps'));
    expect(ran.code, ran.stderr).toBe(0);
    await waitForHost(laptop, 'box', (h) => h.account?.presence === 'online');
    const refused = await hangar(phone, ['session', 'ls', 'vps']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/no computer this one trusts vouched for/);

    // The laptop's window links to the host it paired with, and vouches for it at the relay.
    await openWindow(laptop, cleanups);
    await until(() => hangar(phone, ['session', 'ls', 'vps']), 'the phone');
  });
});
