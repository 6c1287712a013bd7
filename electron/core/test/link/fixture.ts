import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { FrameTransport, HostInfo } from '@hangar/shared';
import { connectToHost } from '../../src/link/connect.js';
import { LinkServer, issuePairingCode, type AuthenticatedLink } from '../../../../host-agent/src/link/index.js';
import { AgentStore } from '../../../../host-agent/src/store/db.js';
import { listPairedDevices } from '../../../../host-agent/src/store/pairing.js';

export const HOST_INFO: HostInfo = {
  hostname: 'test-host',
  os: 'linux',
  arch: 'x64',
  agent_version: '0.0.0-test',
  tmux_version: null,
  session_limit: 5,
};

/** Everything a test starts, disposed in reverse order by afterEach. */
export class Cleanup {
  private readonly items: (() => unknown)[] = [];
  add(dispose: () => unknown): void {
    this.items.push(dispose);
  }
  async run(): Promise<void> {
    while (this.items.length > 0) await this.items.pop()!();
  }
}

export interface TestAgent {
  server: LinkServer;
  store: AgentStore;
  dataDir: string;
  address: string;
  links: AuthenticatedLink[];
  issueCode(): string;
  pairedKeys(): string[];
  /** Stops the server (keeps the data dir) so a test can change identity files and restart. */
  restart(): Promise<void>;
}

export interface TestAgentOptions {
  now?: () => number;
  pairRateLimit?: { burst: number; perSecond: number };
  handshakeTimeoutMs?: number;
}

export async function tempDir(cleanup: Cleanup, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanup.add(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function startTestAgent(cleanup: Cleanup, options: TestAgentOptions = {}): Promise<TestAgent> {
  const dataDir = await tempDir(cleanup, 'hangar-agent-');
  const store = AgentStore.open(dataDir);
  cleanup.add(() => store.dispose());
  const links: AuthenticatedLink[] = [];
  const listen = () =>
    LinkServer.listen({
      host: '127.0.0.1',
      port: 0,
      dataDir,
      store,
      hostInfo: () => HOST_INFO,
      logger: pino({ level: 'silent' }),
      onLink: (link) => links.push(link),
      ...options,
    });
  let server = await listen();
  cleanup.add(() => agent.server.dispose());
  cleanup.add(() => links.forEach((link) => link.transport.close()));
  const agent: TestAgent = {
    server,
    store,
    dataDir,
    address: `127.0.0.1:${server.address().port}`,
    links,
    issueCode: () => issuePairingCode(store, options.now ? { now: options.now } : {}).code,
    pairedKeys: () => listPairedDevices(store).map((device) => device.public_key),
    async restart() {
      await agent.server.dispose();
      server = await listen();
      agent.server = server;
      agent.address = `127.0.0.1:${server.address().port}`;
    },
  };
  return agent;
}

export function newDeviceKey(): KeyObject {
  return generateKeyPairSync('ed25519').privateKey;
}

export function nextFrame(transport: FrameTransport, timeoutMs = 5000): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no frame arrived')), timeoutMs);
    const subscription = transport.onFrame((frame) => {
      clearTimeout(timer);
      void subscription.dispose();
      resolve(frame);
    });
  });
}

/** Polls until `check` is true; links reach onLink a tick after the client's promise resolves. */
export async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** What a device pins of a host after the first link: its agent key and its certificate's fingerprint. */
export function pinsOf(linked: { agent_key: string; cert_fingerprint: string }) {
  return { agent_key: linked.agent_key, cert_fingerprint: linked.cert_fingerprint };
}

/**
 * A device (a new key unless given) pairs with a code (a new one the agent prints unless given);
 * the link is closed again.
 */
export async function pairDevice(
  agent: TestAgent,
  deviceName = 'laptop',
  deviceKey = newDeviceKey(),
  pairingCode = agent.issueCode(),
) {
  const paired = await connectToHost({ address: agent.address, deviceKey, deviceName, pairingCode });
  paired.transport.close();
  return { deviceKey, paired, pinned: pinsOf(paired) };
}

/** The next link of a paired device, in auth mode with the pins of its first. */
export function reconnect(
  agent: TestAgent,
  deviceKey: KeyObject,
  first: { agent_key: string; cert_fingerprint: string },
  deviceName = 'laptop',
) {
  return connectToHost({ address: agent.address, deviceKey, deviceName, pinned: pinsOf(first) });
}
