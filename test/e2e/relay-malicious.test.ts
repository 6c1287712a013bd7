import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  makeHostStatement,
  makeStatement,
  signPresence,
  toHex,
  type Ed25519Signer,
  type HostPresence,
} from '@hangar/shared';
import { loadOrCreateDeviceKey } from '../../electron/core/src/identity/device-key.js';
import { loadOrCreateAgentKey } from '../../host-agent/src/identity/keys.js';
import { loadOrCreateTlsCert } from '../../host-agent/src/identity/tls.js';
import { hangar } from '../support/processes.js';
import { dirFor, useCleanups } from '../support/cleanups.js';
import { RelayDouble } from '../support/relay-double.js';
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
 * A relay whose operator turned hostile, played by a test double in front of a real relay
 * (test/support/relay-double.ts): it lists its own machine, or its own key, for an enrolled host;
 * it forges an endorsement for a device; it answers a used token as if it were new. Each is
 * refused by the device or the host, saying why, and nothing is pinned or let in.
 */

const { cleanups, dir, hostMachine } = useRelayStack();
/** What hangar login prints on a computer that waits for approval. */
const CODE = /approval code: ((?:[A-Z2-7]{4}-){7}[A-Z2-7]{4})/;

/**
 * One double in front of one real relay (which signs and checks the double's origin) for the whole
 * file: each test has an account of its own (its own email), so nothing one test does on the relay
 * is seen by another; what a test tells the double to lie about is undone before the next.
 */
const shared = useCleanups(afterAll);
let stack: { double: RelayDouble; relayData: string };
/** This test's account: an email no other test of the file signs up with. */
let email = '';
let accounts = 0;
beforeAll(async () => {
  const double = await RelayDouble.start();
  shared.push(() => double[Symbol.asyncDispose]());
  const relayData = dirFor(shared, 'relay');
  const relay = await relayFor(shared, relayData, 0, ['--public-url', double.url]);
  double.setUpstream(relay.url);
  stack = { double, relayData };
});
beforeEach(() => {
  const { double } = stack;
  double.rewriteHost = undefined;
  double.rewriteResult = undefined;
  double.replayUsedTokens = false;
  double.calls.splice(0);
  email = `me-${++accounts}@example.com`;
});

/** The shared double and relay, and a laptop signed up to an account of this test's own. */
async function compromisedRelay() {
  const { double, relayData } = stack;
  const laptop = dir('laptop');
  const signed = await signupCli(laptop, double.url, email);
  expect(signed.code, signed.stderr).toBe(0);
  return { double, laptop, relayData };
}

async function enrolledHost(laptop: string) {
  const machine = await hostMachine();
  const line = await enrollLine(laptop, 'mini');
  const ran = await machine.shell.run(line);
  expect(ran.code, ran.stderr).toBe(0);
  await waitForHost(laptop, 'mini', (h) => h.status === 'online');
  return { ...machine, line };
}

/** The attacker's machine: an address on loopback that counts who connects to it (and hangs up). */
async function countingTrap(): Promise<{ address: string; readonly dialed: number }> {
  let dialed = 0;
  const trap = createServer((socket) => {
    dialed++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => trap.close(() => resolve())));
  return {
    address: `127.0.0.1:${(trap.address() as AddressInfo).port}`,
    get dialed() {
      return dialed;
    },
  };
}

function fakeKey(): { signer: Ed25519Signer; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(12));
  return { signer: { publicKey: raw, sign: (m) => new Uint8Array(sign(null, m, privateKey)) }, publicKey: toHex(raw) };
}

/** What the double puts in place of the host: `key` and `addresses`, the record signed by that key. */
function impersonate(
  key: { signer: Ed25519Signer; publicKey: string },
  certHex: string,
  addresses: string[],
  name = 'mini',
) {
  return (host: HostPresence): HostPresence => {
    if (host.name !== name || host.record === null) return host;
    const record = { ...host.record, addresses, tailnet: [], issued_at: Date.now() };
    return {
      ...host,
      public_key: key.publicKey,
      cert_fingerprint: certHex,
      record,
      signature: signPresence(key.signer, record),
    };
  };
}

describe('a compromised relay', () => {
  it('lists its own machine for an enrolled host: the first link fails saying the relay may be compromised, and pins nothing', async () => {
    const { double, laptop } = await compromisedRelay();
    await enrolledHost(laptop);
    // The attacker's machine: a real agent with a key and certificate of its own.
    const attacker = await hostMachine();
    const key = await loadOrCreateAgentKey(attacker.shell.agentData);
    const cert = await loadOrCreateTlsCert(attacker.shell.agentData);
    double.rewriteHost = impersonate(
      { signer: key.signer, publicKey: key.publicKeyHex },
      cert.fingerprint.replace(/:/g, '').toLowerCase(),
      [`127.0.0.1:${attacker.agent.port}`],
    );

    const tried = await hangar(laptop, ['session', 'new', 'mini', '--name', 'work', '--', 'sleep', '60']);
    expect(tried.code).toBe(4);
    expect(tried.stderr).toMatch(
      /did not accept the enrollment secret.*the relay may be compromised.*Nothing was pinned/,
    );
    expect((await hostsLs(laptop)).find((h) => h.name === 'mini')).toMatchObject({ via: 'relay', link: 'offline' });

    // Nothing was spent either: once the relay tells the truth, the first link works.
    double.rewriteHost = undefined;
    const honest = await hangar(laptop, ['session', 'new', 'mini', '--name', 'work', '--', 'sleep', '60']);
    expect(honest.code, honest.stderr).toBe(0);
  });

  it("puts its own key on the host's real address: the pairing proves the host's real key, so it is refused and nothing is pinned", async () => {
    const { double, laptop } = await compromisedRelay();
    const { agent } = await enrolledHost(laptop);
    const certHex = createHash('sha256').update(randomBytes(32)).digest('hex');
    double.rewriteHost = impersonate(fakeKey(), certHex, [`127.0.0.1:${agent.port}`]);

    const tried = await hangar(laptop, ['session', 'new', 'mini', '--name', 'work', '--', 'sleep', '60']);
    expect(tried.code).toBe(4);
    expect(tried.stderr).toMatch(
      /its key is not the one the relay lists for it: the relay may be compromised\. Nothing was pinned/,
    );
    expect((await hostsLs(laptop)).find((h) => h.name === 'mini')).toMatchObject({ via: 'relay', link: 'offline' });
  });

  it('forges an endorsement for a device: it changes nothing on the host, which says so in its log and refuses the device', async () => {
    const { double, laptop, relayData } = await compromisedRelay();
    const { agent } = await enrolledHost(laptop);
    expect((await hangar(laptop, ['session', 'new', 'mini', '--name', 'mine', '--', 'sleep', '600'])).code).toBe(0);
    const phone = dir('phone');
    expect((await loginCli(phone, double.url, email, 'phone')).code).toBe(0);

    const accountId = (
      JSON.parse((await hangar(laptop, ['account', '--json'])).stdout) as { account: { account_id: string } }
    ).account.account_id;
    const phoneKey = (await loadOrCreateDeviceKey(phone)).publicKeyHex;
    const laptopKey = (await loadOrCreateDeviceKey(laptop)).publicKeyHex;
    const fields = {
      kind: 'endorse' as const,
      account_id: accountId,
      subject_device_key: phoneKey,
      subject_name: 'phone',
    };
    // Signed by the relay's own key; and one that claims the laptop signed it (it did not).
    const own = makeStatement(fakeKey().signer, { ...fields, issued_at: Date.now() });
    const claimed = {
      ...makeStatement(fakeKey().signer, { ...fields, issued_at: Date.now() }),
      signer_device_key: laptopKey,
    };
    double.sendToAgents({
      type: 'statements',
      statements: [
        { ...own, seq: 1000, stored_at: Date.now() },
        { ...claimed, seq: 1001, stored_at: Date.now() },
      ],
    });
    const deadline = Date.now() + 15_000;
    while (!/"seq":1001[^\n]*ignored a statement|ignored a statement[^\n]*"seq":1001/.test(agent.stderr())) {
      if (Date.now() > deadline) throw new Error(`the agent never said it ignored the forgery: ${agent.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The one signed by the relay's own key is kept (a key no trusted device vouched for counts for nothing).
    expect(agent.stderr()).toMatch(
      /"seq":1000[^\n]*kept a statement without effect|kept a statement without effect[^\n]*"seq":1000/,
    );
    expect(agent.stderr()).toMatch(/it is signed by a device this host does not trust \(yet\)/);
    expect(agent.stderr()).toMatch(/its signature does not verify with the signer key/);

    // The operator also marks the phone approved in the relay's own record, so the relay shows it
    // the account's hosts (an honest relay shows a pending device none): the host still decides.
    const relayDb = new Database(join(relayData, 'relay.db'));
    try {
      relayDb.prepare("UPDATE devices SET status = 'endorsed' WHERE public_key = ?").run(phoneKey);
    } finally {
      relayDb.close();
    }
    const refused = await hangar(phone, ['session', 'ls', 'mini']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/does not let this computer in: a device it trusts must approve this one first/);
  });

  it("swaps a new computer's key for its own: the code the user types does not match, and nothing is approved", async () => {
    const { double, laptop } = await compromisedRelay();
    const phone = dir('phone');
    const joined = await loginCli(phone, double.url, email, 'phone');
    expect(joined.code, joined.stderr).toBe(0);
    const code = CODE.exec(joined.stdout)![1]!;
    // The relay's own key in place of the phone's, wherever it describes the phone.
    const own = fakeKey().publicKey;
    const phoneKey = (await loadOrCreateDeviceKey(phone)).publicKeyHex;
    double.rewriteResult = (method, result) =>
      method === 'devices.tag' || method === 'devices.list'
        ? JSON.parse(JSON.stringify(result).replaceAll(phoneKey, own))
        : result;

    const tried = await hangar(laptop, ['devices', 'approve', 'phone', '--code', code]);
    expect(tried.code).toBe(1);
    expect(tried.stderr).toMatch(
      /the code given is not the one "phone" shows.*the relay may have swapped its key\. Nothing was approved/,
    );
    double.rewriteResult = undefined;
    const devices = JSON.parse((await hangar(laptop, ['devices', 'ls', '--json'])).stdout) as {
      name: string;
      status: string;
    }[];
    expect(devices.find((d) => d.name === 'phone')?.status).toBe('pending');
    expect(double.calls).not.toContain('devices.endorse');
  });

  it('shows a newly approved computer a machine of its own as an existing host: refused before any dial; the real one links', async () => {
    const { double, laptop } = await compromisedRelay();
    await enrolledHost(laptop);
    expect((await hangar(laptop, ['session', 'new', 'mini', '--name', 'mine', '--', 'sleep', '600'])).code).toBe(0);
    const phone = dir('phone');
    const joined = await loginCli(phone, double.url, email, 'phone');
    expect(joined.code, joined.stderr).toBe(0);
    const approved = await hangar(laptop, ['devices', 'approve', 'phone', '--code', CODE.exec(joined.stdout)![1]!]);
    expect(approved.code, approved.stderr).toBe(0);

    // The attacker's machine: an address that counts who connects to it, and a key of the relay's.
    const trap = await countingTrap();
    const certHex = createHash('sha256').update(randomBytes(32)).digest('hex');
    double.rewriteHost = impersonate(fakeKey(), certHex, [trap.address]);
    const tried = await hangar(phone, ['session', 'ls', 'mini']);
    expect(tried.code).toBe(4);
    expect(tried.stderr).toMatch(
      /the relay lists "mini" with a key that no computer this one trusts vouched for.*the relay may be compromised.*Nothing was dialed/,
    );
    expect(trap.dialed).toBe(0);
    expect((await hostsLs(phone)).find((h) => h.name === 'mini')).toMatchObject({ via: 'relay', link: 'offline' });

    // The relay tells the truth again: the key the laptop handed over is the real mini's.
    double.rewriteHost = undefined;
    const honest = await hangar(phone, ['session', 'ls', 'mini']);
    expect(honest.code, honest.stderr).toBe(0);
    expect(honest.stdout).toContain('mine');
    expect((await hostsLs(phone)).find((h) => h.name === 'mini')).toMatchObject({ keys_from_relay: false });
  });

  it('lists its own machine as a host enrolled after a computer was approved: refused unless a trusted computer vouched for its key', async () => {
    const { double, laptop } = await compromisedRelay();
    await enrolledHost(laptop);
    expect((await hangar(laptop, ['session', 'ls', 'mini'])).code).toBe(0);
    const phone = dir('phone');
    const joined = await loginCli(phone, double.url, email, 'phone');
    const approved = await hangar(laptop, ['devices', 'approve', 'phone', '--code', CODE.exec(joined.stdout)![1]!]);
    expect(approved.code, approved.stderr).toBe(0);
    expect((await hangar(phone, ['session', 'ls', 'mini'])).code).toBe(0);

    // A host enrolled after the phone was approved: the laptop's first link vouches for its key.
    const vps = await hostMachine();
    expect((await vps.shell.run(await enrollLine(laptop, 'vps'))).code).toBe(0);
    await waitForHost(laptop, 'vps', (h) => h.status === 'online');
    expect((await hangar(laptop, ['session', 'new', 'vps', '--name', 'there', '--', 'sleep', '600'])).code).toBe(0);

    // The relay puts its own machine and key in its place, with a vouch signed by a key of its own.
    const trap = await countingTrap();
    const own = fakeKey();
    const certHex = createHash('sha256').update(randomBytes(32)).digest('hex');
    const fake = impersonate(own, certHex, [trap.address], 'vps');
    double.rewriteHost = (host) => {
      const listed = fake(host);
      if (listed === host) return host;
      const fields = {
        kind: 'host' as const,
        account_id: listed.vouches![0]!.account_id,
        host_key: own.publicKey,
        cert_fingerprint: certHex,
        name: 'vps',
        issued_at: Date.now(),
      };
      return { ...listed, vouches: [makeHostStatement(fakeKey().signer, fields)] };
    };
    const tried = await hangar(phone, ['session', 'ls', 'vps']);
    expect(tried.code).toBe(4);
    expect(tried.stderr).toMatch(
      /the relay lists "vps" with a key that no computer this one trusts vouched for.*Nothing was dialed/,
    );
    expect(trap.dialed).toBe(0);

    double.rewriteHost = undefined;
    const honest = await hangar(phone, ['session', 'ls', 'vps']);
    expect(honest.code, honest.stderr).toBe(0);
    expect(honest.stdout).toContain('there');
  });

  it("lists its own machine as a host another computer enrolled: the account's first computer refuses it too, and dials the real one on that computer's vouch", async () => {
    const { double, laptop } = await compromisedRelay();
    const phone = dir('phone');
    const joined = await loginCli(phone, double.url, email, 'phone');
    const approved = await hangar(laptop, ['devices', 'approve', 'phone', '--code', CODE.exec(joined.stdout)![1]!]);
    expect(approved.code, approved.stderr).toBe(0);

    // The phone enrolls a host; its first link vouches for its key. The laptop never linked to it.
    const vps = await hostMachine();
    expect((await vps.shell.run(await enrollLine(phone, 'vps'))).code).toBe(0);
    await waitForHost(phone, 'vps', (h) => h.status === 'online');
    expect((await hangar(phone, ['session', 'new', 'vps', '--name', 'there', '--', 'sleep', '600'])).code).toBe(0);

    const trap = await countingTrap();
    const certHex = createHash('sha256').update(randomBytes(32)).digest('hex');
    double.rewriteHost = impersonate(fakeKey(), certHex, [trap.address], 'vps');
    const tried = await hangar(laptop, ['session', 'ls', 'vps']);
    expect(tried.code).toBe(4);
    expect(tried.stderr).toMatch(
      /the relay lists "vps" with a key that no computer this one trusts vouched for.*Nothing was dialed/,
    );
    expect(trap.dialed).toBe(0);

    // The relay tells the truth again: the phone, which the laptop approved, vouched for the real key,
    // so the laptop dials the real vps, which lets it in (the phone vouched back for the laptop).
    double.rewriteHost = undefined;
    const honest = await hangar(laptop, ['session', 'ls', 'vps']);
    expect(honest.code, honest.stderr).toBe(0);
    expect(honest.stdout).toContain('there');
    expect(trap.dialed).toBe(0);
  });

  it('answers a used enrollment token as if it were new: the host refuses it without asking', async () => {
    const { double, laptop } = await compromisedRelay();
    const { shell, line } = await enrolledHost(laptop);
    double.replayUsedTokens = true;
    const before = double.calls.filter((c) => c === 'hosts.enroll').length;
    const again = await shell.run(line);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already used on this host.*hangar hosts enroll-token/);
    expect(double.calls.filter((c) => c === 'hosts.enroll').length).toBe(before);
  });
});
