import { randomBytes } from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import {
  RELAY_CLOSE,
  RelayDeviceSocket,
  agentLinkBytes,
  signHex,
  signPresence,
  type RelayToAgent,
  type RelayToDevice,
  type TextSocketLike,
} from '@hangar/shared';
import {
  endorse,
  enroll,
  hostAndDevice,
  presenceRecord,
  rawDeviceSocket,
  revoke,
  startTestRelay,
  waitFor,
  type TestKey,
  enrollParams,
  login,
  newHost,
  newKey,
  post,
  signup,
  useTestRelay,
} from './support/relay-fixture.js';
import { refusal } from '../../test/support/refusal.js';
import { readBytes } from '../../test/support/socket-bytes.js';
import { usageRecords } from './support/billing-fixture.js';
import { MAX_SOCKETS_PER_DEVICE } from '../src/sockets/hub.js';
import { spliceUpgrade, type SpliceUpgraded } from './support/splice-upgrade.js';

/**
 * What an adversarial review of the relay's open surface found, one test each: what someone with
 * an account of their own, a device the account shut out, or no account at all could do that they
 * should not (and, beside them, that the fixes leave honest clients alone).
 */
describe('security review', () => {
  const relay = useTestRelay('sqlite');

  it('an enrollment token made by a computer that was then revoked enrolls nothing: the revocation ends what it made', async () => {
    const owner = await signup(relay.client);
    const phone = await login(relay.client, owner.email, undefined, 'phone');
    await endorse(relay.client, owner, phone, 'phone');
    // The phone, trusted for now, prints an enrollment line; then the owner shuts it out.
    const made = await relay.client.call(
      'hosts.enroll_token',
      { name: 'mini' },
      {
        accessToken: phone.session.access_token,
      },
    );
    await revoke(relay.client, owner, phone, 'phone');

    const error = await refusal(
      relay.client.call('hosts.enroll', enrollParams(made.token_id, made.relay_secret, newHost('mini'))),
    );
    expect(error.code).toBe('E_TOKEN_INVALID');
    expect(error.message).toMatch(/revoked/);
    expect(error.message).toMatch(/hangar hosts enroll-token/);
    const listed = await relay.client.call('hosts.list', {}, { accessToken: owner.session.access_token });
    expect(listed.hosts).toEqual([]);
  });

  it('an agent flooding presence updates is refused past a budget (each costs a signature check, a write and a broadcast)', async () => {
    await using limited = await limitedRelay();
    const owner = await signup(limited.client);
    const { host, hostId } = await enroll(limited.client, owner);
    const agent = await rawAgent(limited.url, limited.client.origin, hostId, host);
    try {
      for (let i = 0; i < 60; i++) {
        const record = presenceRecord([`192.168.1.${i}:7070`]);
        agent.socket.send(
          JSON.stringify({ type: 'presence.update', record, signature: signPresence(host.signer, record) }),
        );
      }
      const refused = await waitFor('a refusal', () =>
        agent.messages.find((m) => m.type === 'error' && m.error.code === 'E_RATE_LIMITED'),
      );
      expect(refused.type === 'error' && refused.error.message).toMatch(/presence updates/);
      // The socket stays up (an honest agent that changed addresses often is slowed, not cut off).
      expect(agent.socket.readyState).toBe(WebSocket.OPEN);
      const listed = await limited.client.call('hosts.list', {}, { accessToken: owner.session.access_token });
      const kept = listed.hosts[0]!.record!.addresses[0]!;
      expect(Number(/^192\.168\.1\.(\d+):/.exec(kept)![1])).toBeLessThan(30);
    } finally {
      agent.socket.close();
    }
  });

  it('the latest presence refused for that budget is applied once there is room, not left stale', async () => {
    // The relay's clock, set by hand: nothing refills unless the test moves it.
    let clock = Date.now();
    await using limited = await startTestRelay({ rateLimitScale: 1, now: () => clock });
    const owner = await signup(limited.client);
    const { host, hostId } = await enroll(limited.client, owner);
    const agent = await rawAgent(limited.url, limited.client.origin, hostId, host);
    try {
      // Addresses that change often (containers, a VPN going up and down), the last the one that stays.
      for (let i = 0; i < 30; i++) {
        const record = presenceRecord([`192.168.1.${i}:7070`]);
        agent.socket.send(
          JSON.stringify({ type: 'presence.update', record, signature: signPresence(host.signer, record) }),
        );
      }
      await waitFor('a refusal', () =>
        agent.messages.find((m) => m.type === 'error' && m.error.code === 'E_RATE_LIMITED'),
      );
      const addresses = async () =>
        (await limited.client.call('hosts.list', {}, { accessToken: owner.session.access_token })).hosts[0]!.record!
          .addresses;
      expect(await addresses()).not.toEqual(['192.168.1.29:7070']);
      // Room again by the relay's clock: the agent sends nothing more, and the relay has its last word.
      clock += 60_000;
      for (const deadline = Date.now() + 10_000; ;) {
        if ((await addresses())[0] === '192.168.1.29:7070') break;
        if (Date.now() > deadline) throw new Error(`still ${JSON.stringify(await addresses())}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      agent.socket.close();
    }
  });

  it('a device socket flooding `auth` renewals is refused past a budget (each costs two database reads)', async () => {
    await using limited = await limitedRelay();
    const owner = await signup(limited.client);
    const device = rawDeviceSocket(limited.url, owner.session.access_token);
    try {
      await waitFor('ready', () => device.messages.some((m) => m.type === 'ready'));
      for (let i = 0; i < 80; i++) {
        device.socket.send(JSON.stringify({ type: 'auth', access_token: owner.session.access_token }));
      }
      const refused = await waitFor('a refusal', () =>
        device.messages.find((m) => m.type === 'error' && m.error.code === 'E_RATE_LIMITED'),
      );
      expect(refused.type === 'error' && refused.error.message).toMatch(/renewals/);
      expect(device.messages.filter((m) => m.type === 'ready').length).toBeLessThan(40);
      expect(device.closed()).toBeUndefined();
    } finally {
      device.socket.close();
    }
  });

  it('a device socket whose renewal meets that budget asks again once there is room, and is not closed', async () => {
    // The relay's clock, set by hand: nothing refills unless the test moves it.
    let clock = Date.now();
    await using limited = await startTestRelay({ rateLimitScale: 1, now: () => clock });
    const owner = await signup(limited.client);
    // Tokens from now on run out 30 s from now by this machine's clock, so the client renews at
    // once (a minute ahead of the end), while the relay's own deadline is 10 minutes off.
    clock = Date.now() - 9.5 * 60_000;
    const fresh = await limited.client.call('auth.refresh', { refresh_token: owner.session.refresh_token });
    // The account's renewals spent by another socket (its first auth is not a renewal).
    const spender = rawDeviceSocket(limited.url, fresh.access_token);
    await waitFor('spender ready', () => spender.messages.some((m) => m.type === 'ready'));
    for (let i = 0; i < 25; i++) {
      spender.socket.send(JSON.stringify({ type: 'auth', access_token: fresh.access_token }));
    }
    await waitFor('the budget spent', () =>
      spender.messages.some((m) => m.type === 'error' && m.error.code === 'E_RATE_LIMITED'),
    );
    const seen: RelayToDevice[] = [];
    const socket = new RelayDeviceSocket({
      relayUrl: limited.url,
      signer: owner.key.signer,
      socketFactory: (url) => {
        const ws = new WebSocket(url);
        ws.on('message', (data) => seen.push(JSON.parse(String(data)) as RelayToDevice));
        return ws as unknown as TextSocketLike;
      },
      accessToken: async () => fresh.access_token,
      backoff: { initialMs: 100, maxMs: 1_000 },
    });
    socket.start();
    try {
      const readies = () => seen.filter((m) => m.type === 'ready').length;
      await waitFor('connected', () => readies() === 1);
      await waitFor('its renewal refused', () =>
        seen.some((m) => m.type === 'error' && m.error.code === 'E_RATE_LIMITED'),
      );
      // Room again (a few seconds on by the relay's clock): the renewal goes through on the same socket.
      clock += 5_000;
      await waitFor('renewed', () => readies() === 2);
      expect(socket.isReady).toBe(true);
      expect(seen.filter((m) => m.type === 'error' && m.error.code === 'E_RATE_LIMITED').length).toBeLessThan(15);
    } finally {
      socket.dispose();
      spender.socket.close();
    }
  });

  it('a connection that sends its request slowly, or nothing at all, is closed (slowloris holds no descriptor for long)', async () => {
    await using quick = await startTestRelay({ requestTimeoutMs: 1_000 });
    const port = Number(new URL(quick.url).port);
    const closed = (socket: net.Socket) =>
      new Promise<'closed'>((resolve) => {
        socket.on('error', () => undefined);
        socket.on('close', () => resolve('closed'));
        socket.resume(); // read (the relay's 408) so that its end is seen
      });
    // Headers, then a body of 1000 bytes announced and sent a byte every 200 ms.
    const slow = net.connect(port, '127.0.0.1');
    const heard: string[] = [];
    slow.on('data', (chunk: Buffer) => heard.push(chunk.toString()));
    slow.write(
      'POST /v1/relay.info HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{',
    );
    const trickle = setInterval(() => slow.write(' '), 200);
    // Connected, and silent.
    const idle = net.connect(port, '127.0.0.1');
    // Half the headers, never the rest.
    const halfHeaders = net.connect(port, '127.0.0.1');
    halfHeaders.write('GET /healthz HTTP/1.1\r\nHost: rel');
    try {
      // Dropped within a second or two of the 1 s timeout (Node looks every second); bounded at 6 s.
      const bound = new Promise<'still open'>((resolve) => setTimeout(() => resolve('still open'), 6_000));
      const outcomes = await Promise.all([slow, idle, halfHeaders].map((s) => Promise.race([closed(s), bound])));
      expect(outcomes).toEqual(['closed', 'closed', 'closed']);
      // The slow one was told why, in the relay's error shape (not the framework's).
      const answer = heard.join('');
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as Record<string, any>;
      expect(Object.keys(body)).toEqual(['error']);
      expect(body['error'].code).toBe('E_TIMEOUT');
      expect(body['error'].message).toMatch(/within 1 s/);
    } finally {
      clearInterval(trickle);
      for (const socket of [slow, idle, halfHeaders]) socket.destroy();
    }
  });

  it('upgraded sockets outlive the request timeout: agent and device sockets, and a splice whose agent joins late', async () => {
    await using quick = await startTestRelay({ requestTimeoutMs: 1_000 });
    const { owner, hostId, agent, device } = await hostAndDevice(quick);
    let reconnects = 0;
    agent.onState((state) => state.state !== 'online' && reconnects++);
    const joins: Promise<SpliceUpgraded>[] = [];
    // The agent dials back after 1.5 s: the device's upgrade waited past the request timeout.
    agent.onSplice((request) =>
      setTimeout(
        () => joins.push(spliceUpgrade(quick.url, '/v1/splice/accept', { 'hangar-splice': request.splice_id })),
        1_500,
      ),
    );
    try {
      await waitFor('sockets up', () => agent.isWelcomed && device.socket.isReady);
      const asked = await spliceUpgrade(quick.url, '/v1/splice', {
        authorization: `Bearer ${owner.session.access_token}`,
        'hangar-host': hostId,
      });
      expect(asked.status).toBe(101);
      const joined = await joins[0]!;
      expect(joined.status).toBe(101);
      const deviceEnd = (asked as { socket: net.Socket }).socket;
      const hostEnd = (joined as { socket: net.Socket }).socket;
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const got = readBytes(hostEnd, 5);
      deviceEnd.write('hello');
      expect((await got).toString()).toBe('hello');
      expect(agent.isWelcomed && device.socket.isReady).toBe(true);
      expect(reconnects).toBe(0);
      deviceEnd.destroy();
      hostEnd.destroy();
    } finally {
      agent.dispose();
      device.socket.dispose();
    }
  });

  it('an agent flooding usage reports on its socket meets the same budget as over HTTP (each record costs a signature check)', async () => {
    await using limited = await limitedRelay();
    const owner = await signup(limited.client);
    const { host, hostId } = await enroll(limited.client, owner);
    const agent = await rawAgent(limited.url, limited.client.origin, hostId, host);
    try {
      const records = usageRecords(host, 1);
      for (let i = 0; i < 100; i++) {
        agent.socket.send(JSON.stringify({ type: 'usage.report', batch_id: `b${i}`, records }));
      }
      const refused = await waitFor('a refusal', () =>
        agent.messages.find((m) => m.type === 'error' && m.error.code === 'E_RATE_LIMITED'),
      );
      expect(refused.type === 'error' && refused.error.message).toMatch(/usage reports/);
      // The first reports were answered; the refused ones were not (the agent sends them again).
      await waitFor('the answered ones', () => agent.messages.filter((m) => m.type === 'usage.ack').length >= 60);
      expect(agent.messages.filter((m) => m.type === 'usage.ack').length).toBeLessThan(100);
      expect(agent.socket.readyState).toBe(WebSocket.OPEN);
    } finally {
      agent.socket.close();
    }
  });

  it('auth.logout, open to anyone, is rate-limited per address like auth.refresh (each is a lookup of a token)', async () => {
    await using limited = await limitedRelay();
    const statuses: number[] = [];
    for (let i = 0; i < 32; i++) {
      const guess = randomBytes(32).toString('base64url');
      statuses.push((await post(limited.url, 'auth.logout', { refresh_token: guess })).status);
    }
    expect(statuses.slice(0, 30).every((status) => status === 200)).toBe(true);
    expect(statuses.slice(30)).toEqual([429, 429]);
  });

  it('removing a host from the account closes the relayed links to it at once', async () => {
    const { owner, hostId, agent, device } = await hostAndDevice(relay);
    const joins: Promise<SpliceUpgraded>[] = [];
    agent.onSplice((request) =>
      joins.push(spliceUpgrade(relay.url, '/v1/splice/accept', { 'hangar-splice': request.splice_id })),
    );
    try {
      await waitFor('sockets up', () => agent.isWelcomed && device.socket.isReady);
      const asked = await spliceUpgrade(relay.url, '/v1/splice', {
        authorization: `Bearer ${owner.session.access_token}`,
        'hangar-host': hostId,
      });
      expect(asked.status).toBe(101);
      const joined = await joins[0]!;
      expect(joined.status).toBe(101);
      const ends = [asked, joined].map((side) => {
        const socket = (side as { socket: net.Socket }).socket;
        socket.resume();
        return new Promise<'closed'>((resolve) => socket.once('close', () => resolve('closed')));
      });
      await relay.client.call('hosts.remove', { host_id: hostId }, { accessToken: owner.session.access_token });
      // Well before the splice's idle limit (60 s).
      const bound = new Promise<'still open'>((resolve) => setTimeout(() => resolve('still open'), 3_000));
      expect(await Promise.all(ends.map((end) => Promise.race([end, bound])))).toEqual(['closed', 'closed']);
    } finally {
      agent.dispose();
      device.socket.dispose();
    }
  });

  it("one device holds at most 32 sockets on a replica: past that the newest is refused, the window's own (the oldest) kept", async () => {
    const owner = await signup(relay.client);
    // The window's core connects first and stays; then a script runs many hangar commands at once,
    // each with a socket of the same device key while it runs.
    const window = rawDeviceSocket(relay.url, owner.session.access_token);
    const commands: ReturnType<typeof rawDeviceSocket>[] = [];
    try {
      await waitFor('the window ready', () => window.messages.some((m) => m.type === 'ready'));
      for (let i = 0; i < MAX_SOCKETS_PER_DEVICE - 1; i++) {
        const socket = rawDeviceSocket(relay.url, owner.session.access_token);
        commands.push(socket);
        await waitFor(`command ${i} ready`, () => socket.messages.some((m) => m.type === 'ready'));
      }
      const tooMany = rawDeviceSocket(relay.url, owner.session.access_token);
      commands.push(tooMany);
      const closed = await waitFor('the newest refused', () => tooMany.closed());
      expect(closed.code).toBe(RELAY_CLOSE.rateLimited);
      const refused = tooMany.messages.find((m) => m.type === 'error');
      expect(refused?.type === 'error' && refused.error.message).toMatch(
        /32 connections open to this relay \(its window, hangar commands\).*retries once one ends/,
      );
      // The close reason, what a client logs, says it whole.
      expect(closed.reason).toBe(refused?.type === 'error' && refused.error.message);
      expect(tooMany.messages.some((m) => m.type === 'ready')).toBe(false);
      // The window and every command already running keep theirs.
      expect(window.closed()).toBeUndefined();
      expect(commands.slice(0, -1).every((s) => s.closed() === undefined)).toBe(true);
      // A command ends: the next one gets in, and the window is still not the one closed.
      commands[0]!.socket.close();
      await waitFor('the first command gone', () => commands[0]!.closed());
      const next = rawDeviceSocket(relay.url, owner.session.access_token);
      commands.push(next);
      await waitFor('the next command ready', () => next.messages.some((m) => m.type === 'ready'));
      expect(window.closed()).toBeUndefined();
    } finally {
      window.socket.close();
      for (const socket of commands) socket.socket.close();
    }
  });

  it('sign-ins whose proof does not verify are limited per address (each costs a signature check), and a good proof still signs in', async () => {
    await using limited = await limitedRelay();
    const owner = await signup(limited.client);
    const statuses: number[] = [];
    for (let i = 0; i < 14; i++) {
      const key = newKey();
      const response = await post(limited.url, 'auth.login', {
        email: owner.email,
        password: 'whatever it is',
        device: { public_key: key.publicKey, name: 'guess' },
        proof: { issued_at: Date.now(), signature: 'ab'.repeat(64) },
      });
      statuses.push(response.status);
    }
    expect(statuses.slice(0, 10).every((status) => status === 401)).toBe(true);
    expect(statuses.slice(10)).toEqual([429, 429, 429, 429]);
    // The owner's device, its proof good, is not held by what others' bad proofs spent.
    const again = await login(limited.client, owner.email, owner.key, 'laptop');
    expect(again.session.device.device_id).toBe(owner.session.device.device_id);
  });

  it('an account holds at most 16 computers waiting for approval: past that a new one is refused, saying what to do', async () => {
    const owner = await signup(relay.client);
    for (let i = 0; i < 16; i++) {
      const waiting = await login(relay.client, owner.email, newKey(), `new-${i}`);
      expect(waiting.session.device.status).toBe('pending');
    }
    const refused = await refusal(login(relay.client, owner.email, newKey(), 'one-too-many'));
    expect(refused.code).toBe('E_FORBIDDEN');
    expect(refused.message).toMatch(/16 computers waiting for approval.*hangar devices/);
    const listed = await relay.client.call('devices.list', {}, { accessToken: owner.session.access_token });
    expect(listed.devices).toHaveLength(17);
    // A computer already waiting signs in again; the account's own trusted device too.
    await login(relay.client, owner.email, owner.key, 'laptop');
  });
});

/** An agent socket spoken by hand: answers the challenge and waits for welcome. */
async function rawAgent(url: string, origin: string, hostId: string, host: TestKey) {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/v1/agent`);
  const messages: RelayToAgent[] = [];
  socket.on('message', (data) => {
    const message = JSON.parse(String(data)) as RelayToAgent;
    messages.push(message);
    if (message.type === 'challenge') {
      const signature = signHex(host.signer, agentLinkBytes({ relayOrigin: origin, challenge: message.challenge }));
      socket.send(JSON.stringify({ type: 'auth', host_id: hostId, signature }));
    }
  });
  await waitFor('welcome', () => messages.some((m) => m.type === 'welcome'));
  return { socket, messages };
}

/**
 * A relay with its real limits and its clock stopped: no budget refills while a test spends it,
 * however slowly the machine runs it.
 */
function limitedRelay() {
  const stopped = Date.now();
  return startTestRelay({ rateLimitScale: 1, now: () => stopped });
}
