import net from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { RELAY_PROCEDURES, makeLoginProof, makeStatement, type RelayMethod } from '@hangar/shared';
import { newKey, post, signup, uniqueEmail, type SignedIn, describeEachStorage } from './support/relay-fixture.js';

/**
 * Every procedure of RELAY_PROCEDURES, given bad input: 400, E_BAD_REQUEST, the field named, and
 * not one row written anywhere. A procedure added without a case here fails the first test.
 */
function badInputs(user: SignedIn, origin: string): Record<RelayMethod, { body: unknown; field: string }> {
  const key = newKey();
  const email = uniqueEmail('bad');
  const device = { public_key: key.publicKey, name: 'laptop' };
  const proof = makeLoginProof(key.signer, { relayOrigin: origin, identity: email });
  const statement = makeStatement(user.key.signer, {
    kind: 'endorse',
    account_id: user.session.account.account_id,
    subject_device_key: key.publicKey,
    subject_name: 'x',
    issued_at: Date.now(),
  });
  return {
    'relay.info': { body: { surprise: 1 }, field: 'surprise' },
    'auth.signup': { body: { email: 'not-an-email', password: 'long enough password', device, proof }, field: 'email' },
    'auth.login': { body: { email, password: 'short', device, proof }, field: 'password' },
    'auth.oidc': { body: { id_token: 'x', device, proof }, field: 'id_token' },
    'auth.refresh': { body: { refresh_token: 'abc' }, field: 'refresh_token' },
    'auth.logout': { body: {}, field: 'refresh_token' },
    'hosts.enroll_token': { body: { name: 'no spaces allowed' }, field: 'name' },
    'hosts.enroll': {
      body: {
        token_id: `tok_${'0'.repeat(32)}`,
        relay_secret: '0'.repeat(64),
        host: { public_key: 'zz', cert_fingerprint: '0'.repeat(64), name: 'mini' },
        proof: '0'.repeat(128),
      },
      field: 'host.public_key',
    },
    'hosts.list': { body: { all: true }, field: 'all' },
    'turn.credentials': { body: { ttl: 1 }, field: 'ttl' },
    'hosts.remove': { body: { host_id: 'mini' }, field: 'host_id' },
    'hosts.vouch': { body: { host_id: 'mini', statement: {} }, field: 'host_id' },
    'devices.list': { body: { all: true }, field: 'all' },
    'devices.offer_tag': { body: { tag: 'not hex' }, field: 'tag' },
    'devices.tag': { body: { device_id: 'phone' }, field: 'device_id' },
    'devices.bundle': { body: { all: true }, field: 'all' },
    'devices.endorse': {
      body: { device_id: user.session.device.device_id, statement: { ...statement, account_id: 'me' } },
      field: 'statement.account_id',
    },
    'devices.revoke': { body: { device_id: 'phone', statement: { ...statement, kind: 'revoke' } }, field: 'device_id' },
    'statements.list': { body: { since: -1 }, field: 'since' },
    'audit.list': { body: { limit: 0 }, field: 'limit' },
    'billing.status': { body: { all: true }, field: 'all' },
    'billing.checkout': { body: { plan: 'enterprise' }, field: 'plan' },
    'billing.portal': { body: { return_url: 'https://evil.example' }, field: 'return_url' },
    'usage.report': {
      body: {
        host_id: `host_${'0'.repeat(32)}`,
        records: [
          {
            attempt_id: 'a 1',
            job_id: 'j-12345678',
            minute_index: 0,
            started_at: Date.now(),
            host_key: key.publicKey,
            signature: '0'.repeat(128),
          },
        ],
      },
      field: 'records.0.attempt_id',
    },
    'account.invite': { body: { email: 'Someone@Example.com' }, field: 'email' },
    'account.accept_invite': {
      body: { invite_token: 'inv1_short', email, password: 'long enough password', device, proof },
      field: 'invite_token',
    },
    'account.members': { body: { all: true }, field: 'all' },
    'account.invites': { body: { all: true }, field: 'all' },
    'account.withdraw_invite': { body: { email: 'not an email' }, field: 'email' },
    'account.remove_member': {
      body: { email: 'ana@example.com', revocations: [{ device_id: 'd-1', statement: { kind: 'revoke' } }] },
      field: 'revocations.0',
    },
  };
}

const TABLES = [
  'accounts',
  'devices',
  'refresh_tokens',
  'enroll_tokens',
  'hosts',
  'statements',
  'audit',
  'usage_records',
  'account_members',
  'billing_customers',
  'subscriptions',
] as const;

describeEachStorage('bad input', (relay) => {
  let user: SignedIn;
  beforeAll(async () => {
    user = await signup(relay.client);
  });

  async function rowCounts(): Promise<Record<string, number>> {
    const db = relay.relay.context.db;
    const counts: Record<string, number> = {};
    for (const table of TABLES) {
      const row = await db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      counts[table] = Number(row.n);
    }
    return counts;
  }

  it('every procedure has a bad-input case', () => {
    expect(Object.keys(badInputs(user, relay.client.origin)).sort()).toEqual(Object.keys(RELAY_PROCEDURES).sort());
  });

  for (const method of Object.keys(RELAY_PROCEDURES) as RelayMethod[]) {
    it(`${method} answers bad input with 400 naming the field, and stores nothing`, async () => {
      const { body, field } = badInputs(user, relay.client.origin)[method];
      const before = await rowCounts();
      const auth = RELAY_PROCEDURES[method].auth !== 'none' ? user.session.access_token : undefined;
      const response = await post(relay.url, method, body, auth);
      expect(response.status).toBe(400);
      expect(response.body['error'].code).toBe('E_BAD_REQUEST');
      expect(response.body['error'].message).toContain(field);
      expect(response.headers.get('x-request-id')).toMatch(/^req_/);
      expect(await rowCounts()).toEqual(before);
    });
  }

  it('a body that is not JSON, or no procedure at all, gets a 4xx in the same error shape', async () => {
    const broken = await post(relay.url, 'auth.login', '{"email": ');
    expect(broken.status).toBe(400);
    expect(broken.body['error'].code).toBe('E_BAD_REQUEST');
    const unknown = await post(relay.url, 'hosts.explode', {});
    expect(unknown.status).toBe(404);
    expect(unknown.body['error'].message).toContain('hosts.explode');
  });

  it('what the framework refuses (no such route, a body too large, a wrong content type) answers the same shape', async () => {
    const shapeOf = async (response: Response) => {
      const body = (await response.json()) as Record<string, any>;
      expect(Object.keys(body)).toEqual(['error']);
      expect(response.headers.get('x-request-id')).toMatch(/^req_/);
      return { status: response.status, code: body['error'].code, message: String(body['error'].message) };
    };
    const noRoute = await shapeOf(await fetch(`${relay.url}/v2/nothing`));
    expect(noRoute).toMatchObject({ status: 404, code: 'E_NOT_FOUND' });
    expect(noRoute.message).toContain('/v2/nothing');
    const tooLarge = await shapeOf(
      await fetch(`${relay.url}/v1/relay.info`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ pad: 'x'.repeat(300 * 1024) }),
      }),
    );
    expect(tooLarge).toMatchObject({ status: 413, code: 'E_BAD_REQUEST' });
    expect(tooLarge.message).toMatch(/256 KiB/);
    const wrongType = await shapeOf(
      await fetch(`${relay.url}/v1/relay.info`, {
        method: 'POST',
        headers: { 'content-type': 'text/xml' },
        body: '<info/>',
      }),
    );
    expect(wrongType).toMatchObject({ status: 415, code: 'E_BAD_REQUEST' });
    expect(wrongType.message).toContain('application/json');
    const badJson = await shapeOf(
      await fetch(`${relay.url}/v1/relay.info`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"surprise": ',
      }),
    );
    expect(badJson).toMatchObject({ status: 400, code: 'E_BAD_REQUEST' });
  });

  it('what the HTTP parser refuses (headers too large, bytes that are not HTTP) answers the same shape', async () => {
    const { port } = new URL(relay.url);
    const raw = (bytes: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(port), '127.0.0.1');
        let heard = '';
        socket.on('data', (chunk: Buffer) => (heard += chunk.toString()));
        socket.on('error', () => undefined);
        socket.on('close', () => resolve(heard));
        setTimeout(() => reject(new Error('no answer in 5 s')), 5_000).unref();
        socket.write(bytes);
      });
    const shapeOf = (answer: string) => {
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as Record<string, any>;
      expect(Object.keys(body)).toEqual(['error']);
      return { status: Number(answer.split(' ')[1]), code: body['error'].code };
    };
    const bigHeaders = await raw(`GET /healthz HTTP/1.1\r\nHost: relay\r\nX-Pad: ${'x'.repeat(40_000)}\r\n\r\n`);
    expect(shapeOf(bigHeaders)).toEqual({ status: 431, code: 'E_BAD_REQUEST' });
    const notHttp = await raw('HELLO THERE\r\n\r\n');
    expect(shapeOf(notHttp)).toEqual({ status: 400, code: 'E_BAD_REQUEST' });
  });
});
