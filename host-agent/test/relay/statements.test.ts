import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeStatement, toHex, type Ed25519Signer, type StatementKind, type StoredStatement } from '@hangar/shared';
import { AgentStore } from '../../src/store/db.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { consumeCodeAndPair, findPairedDevice, insertPairingCode, unpairDevice } from '../../src/store/pairing.js';
import { consumeFirstLinkAndPair, loadEnrollment, saveEnrollment } from '../../src/relay/relay-store.js';
import { applyStatements, reevaluateStatements } from '../../src/relay/statements.js';

/**
 * The host verifies what the relay carries: statements are applied here by the same functions
 * the running agent calls on each batch from the relay (relay-link.ts).
 */

const ACCOUNT = `acct_${'1'.repeat(32)}`;
const OTHER_ACCOUNT = `acct_${'2'.repeat(32)}`;

interface Device {
  signer: Ed25519Signer;
  key: string;
  name: string;
}

function device(name: string): Device {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(12));
  return { signer: { publicKey: raw, sign: (m) => new Uint8Array(sign(null, m, privateKey)) }, key: toHex(raw), name };
}

let seq = 0;
function statement(
  signer: Device,
  kind: StatementKind,
  subject: Device,
  options: { account?: string } = {},
): StoredStatement {
  const made = makeStatement(signer.signer, {
    kind,
    account_id: options.account ?? ACCOUNT,
    subject_device_key: subject.key,
    subject_name: subject.name,
    issued_at: Date.now(),
  });
  return { ...made, seq: ++seq, stored_at: Date.now() };
}

let store: AgentStore;
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hangar-statements-'));
  store = AgentStore.open(dir);
  seq = 0;
  saveEnrollment(
    store,
    {
      relay_url: 'http://relay.test',
      host_id: `host_${'3'.repeat(32)}`,
      account_id: ACCOUNT,
      name: 'mini',
      enrolled_at: Date.now(),
    },
    {
      token_id: `tok_${randomBytes(16).toString('hex')}`,
      device_key: device('unused').key,
      e2e_secret: randomBytes(32).toString('hex'),
      expires_at: Date.now() + 60_000,
    },
  );
});
afterEach(async () => {
  store.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** A device this host pinned by a code (as `hangar hosts add --code` does). */
function pin(d: Device): void {
  store.db.prepare('INSERT INTO paired_devices (public_key, name, paired_at) VALUES (?, ?, ?)').run(d.key, d.name, 1);
}

/** Devices by name, the first of them pinned here (as if paired directly). */
function firstPinned<Names extends string[]>(...names: Names): { [K in keyof Names]: Device } {
  const devices = names.map((name) => device(name));
  pin(devices[0]!);
  return devices as { [K in keyof Names]: Device };
}

const pinned = (d: Device) => findPairedDevice(store, d.key) !== undefined;
const apply = (...statements: StoredStatement[]) => applyStatements(store, statements, Date.now());

describe('statements, verified by the host', () => {
  it('an endorsement signed by a pinned device pins the new device under the name in it', () => {
    const [laptop, phone] = firstPinned('laptop', 'phone');
    const applied = apply(statement(laptop, 'endorse', phone));
    expect(applied.outcomes.map((o) => o.result)).toEqual(['pinned']);
    expect(findPairedDevice(store, phone.key)).toMatchObject({ name: 'phone' });
    expect(
      store.db.prepare('SELECT paired_via, endorsed_by FROM paired_devices WHERE public_key = ?').get(phone.key),
    ).toEqual({ paired_via: 'endorsement', endorsed_by: laptop.key });
  });

  const ignored: [string, RegExp, (laptop: Device, phone: Device) => StoredStatement][] = [
    [
      'about another account, even from a pinned device',
      /another account/,
      (laptop, phone) => statement(laptop, 'endorse', phone, { account: OTHER_ACCOUNT }),
    ],
    [
      'changed after it was signed',
      /signature/,
      (laptop, phone) => ({ ...statement(laptop, 'endorse', phone), subject_name: 'not-a-phone' }),
    ],
  ];
  it.each(ignored)('ignores a statement %s', (_what, reason, make) => {
    const [laptop, phone] = firstPinned('laptop', 'phone');
    const applied = apply(make(laptop, phone));
    expect(applied.outcomes).toMatchObject([{ result: 'ignored', reason: expect.stringMatching(reason) }]);
    expect(pinned(phone)).toBe(false);
    expect(reevaluateStatements(store, Date.now()).outcomes).toEqual([]);
  });

  it('keeps a statement signed by a key no trusted device vouched for (a relay making one up): it changes nothing', () => {
    const [, phone] = firstPinned('laptop', 'phone');
    const relay = device('relay');
    const applied = apply(statement(relay, 'endorse', phone), statement(relay, 'revoke', device('other')));
    expect(applied.outcomes).toMatchObject([
      { result: 'kept', reason: expect.stringMatching(/does not trust/) },
      { result: 'kept' },
    ]);
    expect(reevaluateStatements(store, Date.now()).outcomes).toEqual([]);
    expect(pinned(phone)).toBe(false);
    expect(store.db.prepare('SELECT COUNT(*) AS n FROM revoked_devices').get()).toEqual({ n: 0 });
  });

  it('keeps a bounded number of statements from keys nobody vouched for (a relay flooding it), and still applies trusted ones', () => {
    const [laptop, phone] = firstPinned('laptop', 'phone');
    const LIMIT = 50; // MAX_KEPT_UNTRUSTED in the agent; smaller here, as signing thousands takes long
    const relayKeys = Array.from({ length: 20 }, (_, i) => device(`relay-${i}`));
    // Each about a device of its own: Ed25519 signs deterministically, so the same signer and
    // subject within one millisecond would make a copy, which is ignored for that reason instead.
    const flood = Array.from({ length: LIMIT + 10 }, (_, i) =>
      statement(relayKeys[i % relayKeys.length]!, 'endorse', device(`flooded-${i}`)),
    );
    const applied = applyStatements(store, [...flood, statement(laptop, 'endorse', phone)], Date.now(), LIMIT);
    const results = applied.outcomes.map((o) => o.result);
    expect(results.filter((r) => r === 'kept')).toHaveLength(LIMIT);
    expect(applied.outcomes.filter((o) => o.result === 'ignored')).toHaveLength(10);
    expect(applied.outcomes.find((o) => o.result === 'ignored')?.reason).toMatch(/flooding/);
    expect(results.at(-1)).toBe('pinned');
    expect(pinned(phone)).toBe(true);
    expect(store.db.prepare('SELECT COUNT(*) AS n FROM account_statements').get()).toEqual({
      n: LIMIT + 1,
    });
  });

  it('keeps once a statement the relay sends again under another seq', () => {
    const [laptop, phone] = firstPinned('laptop', 'phone');
    const endorse = statement(laptop, 'endorse', phone);
    apply(endorse);
    const copies = apply(...[2, 3, 4].map((n) => ({ ...endorse, seq: n })));
    expect(copies.outcomes).toMatchObject([2, 3, 4].map((n) => ({ seq: n, result: 'ignored' })));
    expect(copies.outcomes[0]?.reason).toMatch(/copy/);
    expect(store.db.prepare('SELECT COUNT(*) AS n FROM account_statements').get()).toEqual({ n: 1 });
    expect(loadEnrollment(store)?.statements_seq).toBe(4);
  });

  it('follows the chain: what a device signed before this host trusted it applies once a trusted one endorses it', () => {
    const [second, first, phone, old] = firstPinned('second', 'first', 'phone', 'old-phone');
    pin(old);
    // The first computer endorsed the phone and revoked the old phone before this host knew it;
    // then the second computer (pinned here) vouched back for the first.
    const early = apply(statement(first, 'endorse', phone), statement(first, 'revoke', old));
    expect(early.outcomes.map((o) => o.result)).toEqual(['kept', 'kept']);
    expect(pinned(phone)).toBe(false);
    const later = apply(statement(second, 'endorse', first));
    expect(later.outcomes.map((o) => [o.seq, o.result])).toEqual([
      [1, 'pinned'],
      [2, 'revoked'],
      [3, 'pinned'],
    ]);
    expect(later.revoked).toEqual([old.key]);
    expect(pinned(first) && pinned(phone)).toBe(true);
    expect(pinned(old)).toBe(false);
  });

  it('revocation wins along the chain: a device revoked stays out though a device trusted later endorses it', () => {
    const [second, first, phone] = firstPinned('second', 'first', 'phone');
    apply(statement(first, 'revoke', phone), statement(first, 'endorse', phone), statement(second, 'endorse', phone));
    expect(pinned(phone)).toBe(true); // the second computer's endorsement: the first is not trusted yet
    const later = apply(statement(second, 'endorse', first));
    expect(later.revoked).toEqual([phone.key]);
    expect(pinned(phone)).toBe(false);
    expect(apply(statement(second, 'endorse', phone)).outcomes).toMatchObject([{ result: 'ignored' }]);
    expect(pinned(phone)).toBe(false);
  });

  it('revoke wins: an endorsement before it is undone, one after it is ignored', () => {
    const [laptop, phone] = firstPinned('laptop', 'phone');
    const applied = apply(
      statement(laptop, 'endorse', phone),
      statement(laptop, 'revoke', phone),
      statement(laptop, 'endorse', phone),
    );
    expect(applied.outcomes.map((o) => o.result)).toEqual(['pinned', 'revoked', 'ignored']);
    expect(applied.revoked).toEqual([phone.key]);
    expect(pinned(phone)).toBe(false);
  });

  it('applies a batch in seq order whatever order it arrives in', () => {
    const [laptop, phone] = firstPinned('laptop', 'phone');
    const endorse = statement(laptop, 'endorse', phone);
    const revoke = statement(laptop, 'revoke', phone);
    expect(apply(revoke, endorse).outcomes.map((o) => o.result)).toEqual(['pinned', 'revoked']);
    expect(pinned(phone)).toBe(false);
  });

  it('a revoked device signs nothing that counts any more, and a directly paired device can be revoked', () => {
    const [laptop, old, friend] = firstPinned('laptop', 'old-phone', 'friend');
    pin(old);
    const applied = apply(statement(laptop, 'revoke', old), statement(old, 'endorse', friend));
    expect(applied.outcomes.map((o) => o.result)).toEqual(['revoked', 'ignored']);
    expect(applied.outcomes[1]?.reason).toMatch(/revoked device/);
    expect(pinned(old)).toBe(false);
    expect(pinned(friend)).toBe(false);
  });

  it('a stolen laptop revoked: what it endorsed before, and what those endorsed, is unpinned too, whatever the order', () => {
    const [admin, stolen, friend, friendsPhone] = firstPinned('admin', 'stolen', 'friend', 'friends-phone');
    apply(statement(admin, 'endorse', stolen), statement(stolen, 'endorse', friend));
    apply(statement(friend, 'endorse', friendsPhone), statement(friendsPhone, 'endorse', friend)); // a cycle
    expect(pinned(friend) && pinned(friendsPhone)).toBe(true);
    const applied = apply(statement(admin, 'revoke', stolen));
    expect(applied.outcomes.map((o) => o.result)).toEqual(['revoked']);
    expect(applied.revoked.sort()).toEqual([stolen.key, friend.key, friendsPhone.key].sort());
    expect(applied.unvouched.map((d) => d.name).sort()).toEqual(['friend', 'friends-phone']);
    expect(pinned(stolen) || pinned(friend) || pinned(friendsPhone)).toBe(false);
    // Unpinned, not revoked: a trusted computer that vouches for it again lets it in, and with it
    // what it had endorsed (in seq order: its endorsement of the phone, the phone's of it, the new one).
    expect(apply(statement(admin, 'endorse', friend)).outcomes.map((o) => o.result)).toEqual([
      'pinned',
      'already pinned',
      'pinned',
    ]);
    expect(pinned(friend) && pinned(friendsPhone)).toBe(true);
  });

  it('a device approved again after its approver was revoked brings back what it had approved, not what a revoked or unpaired key touched', () => {
    const [admin, stolen, friend, watch, old, unpaired] = firstPinned(
      'admin',
      'stolen',
      'friend',
      'watch',
      'old',
      'unpaired',
    );
    apply(statement(admin, 'endorse', stolen), statement(stolen, 'endorse', friend));
    apply(
      statement(friend, 'endorse', watch),
      statement(friend, 'endorse', old),
      statement(friend, 'endorse', unpaired),
    );
    expect(pinned(watch) && pinned(old) && pinned(unpaired)).toBe(true);
    apply(statement(admin, 'revoke', old)); // revoked on its own: stays out
    unpairDevice(store, dir, 'unpaired'); // the host's owner took it out here: stays out
    const dropped = apply(statement(admin, 'revoke', stolen));
    expect(dropped.unvouched.map((d) => d.name).sort()).toEqual(['friend', 'watch']);

    const again = apply(statement(admin, 'endorse', friend));
    // In seq order: the friend's endorsements (made before) apply again after the new one pins it.
    expect(again.outcomes.map((o) => [o.subject_name, o.result])).toEqual([
      ['watch', 'pinned'], // the friend's endorsement of it stands, signed by a key trusted again
      ['old', 'ignored'],
      ['unpaired', 'ignored'],
      ['friend', 'pinned'],
    ]);
    expect(pinned(friend) && pinned(watch)).toBe(true);
    expect(pinned(old) || pinned(unpaired) || pinned(stolen)).toBe(false);
    // Applied once again, not on every pass.
    expect(reevaluateStatements(store, Date.now()).outcomes).toEqual([]);
  });

  it("a device waiting to be approved again can be unpaired on the host: its approver's return does not bring it back", () => {
    const [admin, stolen, friend, watch] = firstPinned('admin', 'stolen', 'friend', 'watch');
    apply(
      statement(admin, 'endorse', stolen),
      statement(stolen, 'endorse', friend),
      statement(friend, 'endorse', watch),
    );
    apply(statement(admin, 'revoke', stolen));
    expect(pinned(friend) || pinned(watch)).toBe(false);
    // The host's owner does not want the watch back, whoever approves the friend again.
    expect(unpairDevice(store, dir, 'watch')).toMatchObject({ name: 'watch', pinned: false });
    const again = apply(statement(admin, 'endorse', friend));
    expect(again.outcomes.map((o) => [o.subject_name, o.result])).toEqual([
      ['watch', 'ignored'],
      ['friend', 'pinned'],
    ]);
    expect(pinned(friend)).toBe(true);
    expect(pinned(watch)).toBe(false);
    // Nothing else waits under that name now.
    expect(() => unpairDevice(store, dir, 'watch')).toThrow(/no paired device is named/);
  });

  it('the same in one batch: an endorsement, then its signer revoked, leaves nothing it vouched for', () => {
    const [admin, stolen, friend] = firstPinned('admin', 'stolen', 'friend');
    pin(stolen);
    const endorse = statement(stolen, 'endorse', friend);
    const applied = apply(statement(admin, 'revoke', stolen), endorse); // applied in seq order
    expect(applied.outcomes.map((o) => o.result)).toEqual(['pinned', 'revoked']);
    expect(pinned(friend)).toBe(false);
  });

  it('a device another trusted computer also vouched for stays when one of its endorsers is revoked', () => {
    const [admin, stolen, phone, pinnedByCode] = firstPinned('admin', 'stolen', 'phone', 'by-code');
    pin(stolen);
    pin(pinnedByCode);
    apply(
      statement(stolen, 'endorse', phone),
      statement(admin, 'endorse', phone),
      statement(stolen, 'endorse', pinnedByCode),
    );
    const applied = apply(statement(admin, 'revoke', stolen));
    expect(applied.unvouched).toEqual([]);
    expect(pinned(phone) && pinned(pinnedByCode) && pinned(admin)).toBe(true);
  });

  it('stores the highest seq seen, ignored ones included, and applies nothing twice', () => {
    const [laptop, phone] = firstPinned('laptop', 'phone');
    const first = statement(device('stranger'), 'endorse', phone);
    const second = statement(laptop, 'endorse', phone);
    apply(first, second);
    expect(loadEnrollment(store)?.statements_seq).toBe(2);
    expect(apply(first, second).outcomes).toEqual([]); // sent again after a reconnect
  });

  it('keeps what the enrolling device signs before its first link, and applies it once that link pins it', () => {
    const laptop = device('laptop');
    const phone = device('phone');
    const tokenId = `tok_${randomBytes(16).toString('hex')}`;
    store.db
      .prepare(
        'INSERT INTO relay_first_links (token_id, device_key, e2e_secret, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
      )
      .run(tokenId, laptop.key, randomBytes(32).toString('hex'), Date.now(), Date.now() + 60_000);
    expect(apply(statement(laptop, 'endorse', phone)).outcomes.map((o) => o.result)).toEqual(['kept']);
    expect(pinned(phone)).toBe(false);

    expect(consumeFirstLinkAndPair(store, tokenId, { public_key: laptop.key, name: 'laptop' }, Date.now())).toBe(true);
    expect(reevaluateStatements(store, Date.now()).outcomes.map((o) => o.result)).toEqual(['pinned']);
    expect(pinned(phone)).toBe(true);
    expect(reevaluateStatements(store, Date.now()).outcomes).toEqual([]); // applied once
  });

  it('a device revoked before its first link gets in neither by that link nor by what it signed', () => {
    const [admin, laptop, phone] = firstPinned('admin', 'laptop', 'phone');
    const tokenId = `tok_${randomBytes(16).toString('hex')}`;
    store.db
      .prepare(
        'INSERT INTO relay_first_links (token_id, device_key, e2e_secret, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
      )
      .run(tokenId, laptop.key, randomBytes(32).toString('hex'), Date.now(), Date.now() + 60_000);
    apply(statement(laptop, 'endorse', phone), statement(admin, 'revoke', laptop));
    expect(consumeFirstLinkAndPair(store, tokenId, { public_key: laptop.key, name: 'laptop' }, Date.now())).toBe(false);
    expect(reevaluateStatements(store, Date.now()).outcomes).toEqual([]);
    expect(pinned(laptop)).toBe(false);
    expect(pinned(phone)).toBe(false);
  });

  it('a device the host owner unpaired is not pinned again by an endorsement, only by a new pairing', () => {
    const [laptop, phone] = firstPinned('laptop', 'phone');
    apply(statement(laptop, 'endorse', phone));
    expect(pinned(phone)).toBe(true);
    unpairDevice(store, dir, 'phone');
    const again = apply(statement(laptop, 'endorse', phone));
    expect(again.outcomes).toMatchObject([{ result: 'ignored', reason: expect.stringMatching(/unpaired/) }]);
    expect(pinned(phone)).toBe(false);
    const code = insertPairingCode(store, '123456', Date.now(), 60_000);
    expect(consumeCodeAndPair(store, code.id, { public_key: phone.key, name: 'phone' }, Date.now())).toBe(true);
    unpairDevice(store, dir, 'laptop');
    expect(pinned(laptop)).toBe(false);
    // Paired again with a code, the phone's own endorsement of the laptop does not undo the unpairing.
    expect(apply(statement(phone, 'endorse', laptop)).outcomes).toMatchObject([{ result: 'ignored' }]);
    expect(pinned(phone) && !pinned(laptop)).toBe(true);
  });

  it('a host upgraded from before the chain does not pin again a device its owner unpaired before the upgrade', async () => {
    const older = await mkdtemp(join(tmpdir(), 'hangar-statements-old-'));
    try {
      const before = AgentStore.open(
        older,
        MIGRATIONS.filter((m) => m.version <= 9),
      );
      const [second, phone, first, tablet] = [device('second'), device('phone'), device('first'), device('tablet')];
      seq = 0;
      const endorsePhone = statement(second, 'endorse', phone); // applied then; phone unpaired since
      const endorseTablet = statement(first, 'endorse', tablet); // ignored then: first was not pinned
      before.db
        .prepare(
          `INSERT INTO relay_enrollment (id, relay_url, host_id, account_id, name, enrolled_at, statements_seq)
           VALUES (1, 'http://relay.test', ?, ?, 'mini', 1, 2)`,
        )
        .run(`host_${'3'.repeat(32)}`, ACCOUNT);
      before.db
        .prepare(
          "INSERT INTO paired_devices (public_key, name, paired_at, paired_via) VALUES (?, 'second', 1, 'enrollment')",
        )
        .run(second.key);
      before.dispose();
      const after = AgentStore.open(older);
      try {
        expect(loadEnrollment(after)?.statements_seq).toBe(0);
        const read = applyStatements(after, [endorsePhone, endorseTablet], Date.now());
        expect(read.outcomes).toMatchObject([
          { result: 'ignored', reason: expect.stringMatching(/unpaired/) },
          { result: 'kept' },
        ]);
        expect(findPairedDevice(after, phone.key)).toBeUndefined();
        // The chain still works for what was ignored before: the second vouches back for the first.
        applyStatements(after, [statement(second, 'endorse', first)], Date.now());
        expect(findPairedDevice(after, tablet.key)).toBeDefined();
        expect(findPairedDevice(after, phone.key)).toBeUndefined();
      } finally {
        after.dispose();
      }
    } finally {
      await rm(older, { recursive: true, force: true });
    }
  });

  it('a host upgraded from before the chain keeps what it held and reads the account again from the start', async () => {
    const older = await mkdtemp(join(tmpdir(), 'hangar-statements-old-'));
    try {
      const before = AgentStore.open(
        older,
        MIGRATIONS.filter((m) => m.version <= 7),
      );
      const laptop = device('laptop');
      const held = statement(laptop, 'endorse', device('phone'));
      before.db
        .prepare(
          `INSERT INTO relay_enrollment (id, relay_url, host_id, account_id, name, enrolled_at, statements_seq)
           VALUES (1, 'http://relay.test', ?, ?, 'mini', 1, 7)`,
        )
        .run(`host_${'3'.repeat(32)}`, ACCOUNT);
      before.db
        .prepare('INSERT INTO held_statements (seq, signer_key, statement) VALUES (?, ?, ?)')
        .run(held.seq, laptop.key, JSON.stringify(held));
      before.dispose();
      const after = AgentStore.open(older);
      try {
        expect(loadEnrollment(after)?.statements_seq).toBe(0);
        expect(after.db.prepare('SELECT seq, signer_key, applied_at FROM account_statements').all()).toEqual([
          { seq: held.seq, signer_key: laptop.key, applied_at: null },
        ]);
        expect(after.db.prepare('SELECT COUNT(*) AS n FROM held_statements').get()).toEqual({ n: 0 });
      } finally {
        after.dispose();
      }
    } finally {
      await rm(older, { recursive: true, force: true });
    }
  });
});
