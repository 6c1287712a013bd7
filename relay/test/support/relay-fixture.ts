import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe } from 'vitest';
import {
  RelayAgentSocket,
  RelayClient,
  RelayDeviceSocket,
  newEnrollLine,
  enrollProofBytes,
  makeLoginProof,
  makeStatement,
  toHex,
  type Ed25519Signer,
  type HostPresence,
  type LoginResult,
  type PresenceRecord,
  type RelayToDevice,
  type TextSocketLike,
} from '@hangar/shared';
import { startRelay, type RelayOptions, type RunningRelay } from '../../src/index.js';

/** Cheap scrypt for tests (log2 N = 10); the default cost is measured by the benchmark. */
export const TEST_PASSWORD_COST = 10;
export const PASSWORD = 'correct horse battery staple';

export function tempDir(prefix: string): string {
  return realpathSync(mkdtempSync(join(tmpdir(), `hangar-relay-${prefix}-`)));
}

/** An Ed25519 key made with node:crypto, as the core and the agent make theirs. */
export interface TestKey {
  privateKey: KeyObject;
  signer: Ed25519Signer;
  publicKey: string;
}

export function newKey(): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(12));
  const signer: Ed25519Signer = { publicKey: raw, sign: (message) => new Uint8Array(sign(null, message, privateKey)) };
  return { privateKey, signer, publicKey: toHex(raw) };
}

export interface TestHost extends TestKey {
  certFingerprint: string;
  name: string;
}

export function newHost(name = 'mini'): TestHost {
  return { ...newKey(), certFingerprint: createHash('sha256').update(randomBytes(64)).digest('hex'), name };
}

/** A clock tests can move (token expiry) without waiting. */
export class TestClock {
  offset = 0;
  readonly now = () => Date.now() + this.offset;
  advance(ms: number): void {
    this.offset += ms;
  }
}

export interface TestRelay extends AsyncDisposable {
  relay: RunningRelay;
  url: string;
  client: RelayClient;
  dataDir: string | undefined;
  logs: string[];
  stop(): Promise<void>;
}

/** A relay in this process on a free loopback port; SQLite in a temp dir unless storage is given. */
export async function startTestRelay(options: Partial<RelayOptions> = {}): Promise<TestRelay> {
  const dataDir = options.storage ? undefined : tempDir('data');
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const relay = await startRelay({
    listen: { host: '127.0.0.1', port: 0 },
    storage: options.storage ?? { kind: 'sqlite', dataDir: dataDir! },
    passwordCost: TEST_PASSWORD_COST,
    // Many accounts from one address in one file; rate-limits.test.ts runs with the real limits.
    rateLimitScale: 1000,
    ...options,
    log: { destination, level: 'debug', ...options.log },
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await relay.dispose();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  return {
    relay,
    url: relay.url,
    client: new RelayClient({ url: relay.url }),
    dataDir,
    logs,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

let emails = 0;
export function uniqueEmail(label = 'user'): string {
  return `${label}-${process.pid}-${++emails}-${randomBytes(3).toString('hex')}@example.com`;
}

export interface SignedIn {
  key: TestKey;
  session: LoginResult;
  email: string;
}

export async function signup(
  client: RelayClient,
  email = uniqueEmail(),
  key = newKey(),
  name = 'laptop',
): Promise<SignedIn> {
  return passwordSession(client, 'auth.signup', email, key, name);
}

export async function login(client: RelayClient, email: string, key = newKey(), name = 'phone'): Promise<SignedIn> {
  return passwordSession(client, 'auth.login', email, key, name);
}

/** A session for `key` as device `name`, with the test password and the login proof. */
async function passwordSession(
  client: RelayClient,
  method: 'auth.signup' | 'auth.login',
  email: string,
  key: TestKey,
  name: string,
): Promise<SignedIn> {
  const proof = makeLoginProof(key.signer, { relayOrigin: client.origin, identity: email });
  const session = await client.call(method, {
    email,
    password: PASSWORD,
    device: { public_key: key.publicKey, name },
    proof,
  });
  return { key, session, email };
}

/** Makes a token as the signed-in device and enrolls `host` with it, as `hangar-agent enroll` will. */
export async function enroll(client: RelayClient, owner: SignedIn, host = newHost()) {
  const token = await client.call(
    'hosts.enroll_token',
    { name: host.name },
    { accessToken: owner.session.access_token },
  );
  const enrolled = await client.call('hosts.enroll', enrollParams(token.token_id, token.relay_secret, host));
  return { host, hostId: enrolled.host_id, token };
}

/**
 * What `hangar hosts enroll-token` prints: a token from the relay and the end-to-end secret `e`
 * made here (the relay never sees it), in one line for `hangar-agent enroll`.
 */
export async function enrollLine(client: RelayClient, owner: SignedIn, name = 'mini') {
  const token = await client.call('hosts.enroll_token', { name }, { accessToken: owner.session.access_token });
  return { token, ...newEnrollLine(client.baseUrl, token, owner.key.publicKey) };
}

export function enrollParams(tokenId: string, secret: string, host: TestHost) {
  const proof = toHex(
    host.signer.sign(enrollProofBytes({ tokenId, publicKey: host.publicKey, certFingerprint: host.certFingerprint })),
  );
  return {
    token_id: tokenId,
    relay_secret: secret,
    host: { public_key: host.publicKey, cert_fingerprint: host.certFingerprint, name: host.name },
    proof,
  };
}

export const wsFactory = (url: string) => new WebSocket(url) as unknown as TextSocketLike;

export function presenceRecord(addresses = ['192.168.1.20:7070']): PresenceRecord {
  return { addresses, tailnet: ['100.101.102.103:7070'], version: '0.1.0', issued_at: Date.now() };
}

/** `owner`'s signed statement that `kind`s (endorses or revokes) the device of `subject`, named `name`. */
export function statementOf(owner: SignedIn, kind: 'endorse' | 'revoke', subject: { publicKey: string }, name: string) {
  return makeStatement(owner.key.signer, {
    kind,
    account_id: owner.session.account.account_id,
    subject_device_key: subject.publicKey,
    subject_name: name,
    issued_at: Date.now(),
  });
}

/**
 * `signer` endorses the device `subject` is signed in on, as `name`, with its signed statement
 * (what `hangar devices approve` sends); rejects with the relay's error if refused.
 */
export function endorse(client: RelayClient, signer: SignedIn, subject: SignedIn, name: string) {
  return sendStatement(client, 'endorse', signer, subject, name);
}

/** `signer` revokes the device `subject` is signed in on, as endorse does. */
export function revoke(client: RelayClient, signer: SignedIn, subject: SignedIn, name: string) {
  return sendStatement(client, 'revoke', signer, subject, name);
}

/** `devices.endorse` or `devices.revoke` with `signer`'s statement, called with `signer`'s access token. */
export function sendStatement(
  client: RelayClient,
  kind: 'endorse' | 'revoke',
  signer: SignedIn,
  subject: SignedIn,
  name: string,
) {
  return client.call(
    `devices.${kind}`,
    { device_id: subject.session.device.device_id, statement: statementOf(signer, kind, subject.key, name) },
    { accessToken: signer.session.access_token },
  );
}

/** A new account, its owner signed in, with one host enrolled. */
export async function ownerWithHost(client: RelayClient) {
  const owner = await signup(client);
  return { owner, ...(await enroll(client, owner)) };
}

/** ownerWithHost, with the host's agent socket and the owner's device socket started (not yet up). */
export async function hostAndDevice(relay: { client: RelayClient; url: string }) {
  const { owner, host, hostId } = await ownerWithHost(relay.client);
  return { owner, host, hostId, agent: agentSocket(relay.url, hostId, host), device: deviceSocket(relay.url, owner) };
}

/** The shared reconnecting agent socket, as the agent will run it. */
export function agentSocket(url: string, hostId: string, host: TestKey, options: { seq?: () => number } = {}) {
  const socket = new RelayAgentSocket({
    relayUrl: url,
    hostId,
    signer: host.signer,
    socketFactory: wsFactory,
    presence: () => presenceRecord(),
    statementsSeq: options.seq ?? (() => 0),
    backoff: { initialMs: 100, maxMs: 1_000 },
  });
  socket.start();
  return socket;
}

/** A device socket that keeps the latest presence of each host, for tests to wait on. */
export function deviceSocket(url: string, user: SignedIn) {
  const socket = new RelayDeviceSocket({
    relayUrl: url,
    signer: user.key.signer,
    socketFactory: wsFactory,
    accessToken: async () => user.session.access_token,
    backoff: { initialMs: 100, maxMs: 1_000 },
  });
  const hosts = new Map<string, HostPresence>();
  const seen: { at: number; host: HostPresence }[] = [];
  socket.onPresence((host) => {
    hosts.set(host.host_id, host);
    seen.push({ at: performance.now(), host });
  });
  socket.start();
  return { socket, hosts, seen };
}

/** A raw device socket that sends `auth` with `accessToken` once open. */
export function rawDeviceSocket(url: string, accessToken: string) {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/v1/device`);
  const messages: RelayToDevice[] = [];
  let closed: { code: number; reason: string } | undefined;
  socket.on('message', (data) => messages.push(JSON.parse(String(data)) as RelayToDevice));
  socket.on('close', (code, reason) => (closed = { code, reason: reason.toString() }));
  socket.once('open', () => socket.send(JSON.stringify({ type: 'auth', access_token: accessToken })));
  return { socket, messages, closed: () => closed };
}

/** `device` asks `host` (by its id) with `payload` as request `requestId`; resolves with the host's answer. */
export function askHost(
  device: ReturnType<typeof deviceSocket>,
  host: { hostId: string; host: TestKey },
  requestId: string,
  payload: string,
) {
  return device.socket.request({ toHost: host.hostId, recipientKey: host.host.publicKey, requestId, payload });
}

/** Polls until `check` returns something truthy, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A raw HTTP call (for malformed input the typed client would refuse to send). */
export async function post(url: string, method: string, body: unknown, accessToken?: string) {
  const response = await fetch(`${url}/v1/${method}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}),
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: JSON.parse(text) as Record<string, any> };
}

export type StorageKind = 'sqlite' | 'postgres';
/** The core suites run on both; HANGAR_RELAY_TEST_STORAGE=sqlite narrows a local run. */
export const STORAGE_KINDS: StorageKind[] = (process.env['HANGAR_RELAY_TEST_STORAGE']?.split(',') as StorageKind[]) ?? [
  'sqlite',
  'postgres',
];

/**
 * Storage for the relays of one describe block: SQLite in a temp dir each (the fixture's
 * default), or a fresh database each in one PostgreSQL cluster started for the block.
 * Call inside the describe, before the hooks that start relays (so it is torn down after them).
 */
export type TestStorage = ReturnType<typeof testStorage>;

export function testStorage(kind: StorageKind) {
  let cluster: import('./postgres.js').TestPostgres | undefined;
  let databases = 0;
  beforeAll(async () => {
    if (kind === 'postgres') cluster = await (await import('./postgres.js')).startPostgres();
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  return {
    kind,
    /** Options for startTestRelay: a new database (PostgreSQL) or nothing (SQLite temp dir). */
    async relayOptions(): Promise<Partial<RelayOptions>> {
      if (kind === 'sqlite') return {};
      return { storage: { kind: 'postgres', url: await cluster!.createDatabase(`relay_${++databases}`) } };
    },
    /** The same database again (a second replica), PostgreSQL only. */
    cluster: () => cluster,
  };
}

/**
 * For a describe over a storage kind: a relay from `start` on a fresh database of that kind,
 * started before the describe's tests and handed to `started` (to keep in the describe's
 * variable), stopped after them.
 */
export function useRelay<T extends { stop(): Promise<void> }>(
  kind: StorageKind,
  start: (options: Partial<RelayOptions>) => Promise<T>,
  started: (relay: T) => unknown,
): TestStorage {
  const storage = testStorage(kind);
  let relay: T | undefined;
  beforeAll(async () => {
    relay = await start(await storage.relayOptions());
    started(relay);
  });
  afterAll(() => relay?.stop());
  return storage;
}

/**
 * useRelay with a test relay (with `options` beside its storage): the handle it returns is filled
 * in before the describe's tests.
 */
export function useTestRelay(
  kind: StorageKind = 'sqlite',
  options: Partial<RelayOptions> = {},
): TestRelay & { storage: TestStorage } {
  const handle = {} as TestRelay & { storage: TestStorage };
  const start = async (storage: Partial<RelayOptions>) => startTestRelay({ ...options, ...storage });
  handle.storage = useRelay(kind, start, (started) => Object.assign(handle, started));
  return handle;
}

/** A describe block run once per storage kind, each with a relay of its own (useTestRelay). */
export function describeEachStorage(
  title: string,
  body: (relay: ReturnType<typeof useTestRelay>, kind: StorageKind) => void,
): void {
  describe.each(STORAGE_KINDS)(`${title} (%s)`, (kind) => body(useTestRelay(kind), kind));
}

/** How long after `since` `device` saw `hostId` go offline (the first such presence at or after it). */
export async function msUntilOffline(
  device: ReturnType<typeof deviceSocket>,
  hostId: string,
  since: number,
  timeoutMs = 12_000,
): Promise<number> {
  const offline = await waitFor(
    'offline at the device',
    () => device.seen.find((s) => s.host.host_id === hostId && !s.host.online && s.at >= since),
    timeoutMs,
  );
  return offline.at - since;
}
