import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_SOCKETS_PER_DEVICE } from '../../relay/src/sockets/hub.js';
import { rawDeviceSocket, waitFor } from '../../relay/test/support/relay-fixture.js';
import type { RelayProcess } from '../../relay/test/support/relay-process.js';
import { coturnConfig } from '../support/coturn.js';
import { attachAndEcho } from '../support/pty-client.js';
import { BASH, hangar, killTmuxServer, removeDir, startAgentProcess, type AgentProcess } from '../support/processes.js';
import { HostShell, hostsLs, signupCli, startTestRelayProcess, waitForHost } from '../support/relay-stack.js';
import { dirFor, useCleanups, type Cleanups } from '../support/cleanups.js';

/**
 * An enrolled host none of whose published addresses answers is reached over WebRTC: the device
 * offers through the relay's signaling route, the agent answers, the data channel carries the same
 * signed link. On loopback (ICE bound to 127.0.0.1: libjuice gathers no loopback candidate
 * otherwise); the agent's TCP port refuses connections (an iptables rule this test adds and
 * removes), so nothing but WebRTC can reach it.
 */

process.env.HANGAR_WEBRTC_BIND_ADDRESS = '127.0.0.1';

const cleanups = useCleanups();
const dir = (prefix: string) => dirFor(cleanups, prefix);

function iptables(action: '-I' | '-D', port: number): void {
  execFileSync('iptables', [
    action,
    'INPUT',
    '-p',
    'tcp',
    '--dport',
    String(port),
    '-j',
    'REJECT',
    '--reject-with',
    'tcp-reset',
  ]);
}

let hasCoturn = true;
try {
  execFileSync('turnserver', ['--help'], { stdio: 'ignore' });
} catch (error) {
  // turnserver --help exits 1 after printing; only a missing binary is ENOENT.
  hasCoturn = (error as NodeJS.ErrnoException).code !== 'ENOENT';
}

let canFirewall = true;
try {
  execFileSync('iptables', ['-L', 'INPUT', '-n'], { stdio: 'ignore' });
} catch {
  canFirewall = false;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** coturn as documented in README ("Reaching hosts through NAT"), on loopback, with a secret only this test knows. */
async function startCoturn(): Promise<{ uri: string; secretFile: string }> {
  const port = await freePort();
  const work = dir('coturn');
  // Both peers are on this machine: loopback peers allowed, as a real deployment never does.
  const { args, secretFile } = coturnConfig(work, '127.0.0.1', port, { loopbackPeers: true });
  const coturn = spawn('turnserver', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(async () => {
    coturn.kill();
    await new Promise((resolve) => coturn.once('exit', resolve));
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`coturn did not start: ${output}`)), 10_000);
    coturn.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (/listener opened on|IPv4\. TCP listener opened|Total General servers/i.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    });
    coturn.once('exit', (code) => reject(new Error(`coturn exited (${code}): ${output}`)));
  });
  return { uri: `turn:127.0.0.1:${port}`, secretFile };
}

/**
 * A relay, a laptop signed up on it, a host "mini" enrolled from it and online, then the host's TCP
 * port closed (iptables), so only what goes through the relay or WebRTC can reach it. All of it
 * ended with `ends` (the test's cleanups unless given).
 */
async function enrolledBehindFirewall(
  relayArgs: string[] = [],
  agentEnv: Record<string, string> = {},
  ends: Cleanups = cleanups,
) {
  const relay: RelayProcess = await startTestRelayProcess(dirFor(ends, 'relay'), 0, relayArgs);
  ends.push(() => relay.stop());
  const laptop = dirFor(ends, 'laptop');
  expect((await signupCli(laptop, relay.url, 'me@example.com')).code).toBe(0);
  const shell = new HostShell();
  const agent: AgentProcess = await startAgentProcess(shell.agentData, { logLevel: 'info', env: agentEnv });
  ends.push(async () => {
    await agent.stop();
    await killTmuxServer(shell.agentData);
    removeDir(shell.home);
  });
  const line = (await hangar(laptop, ['hosts', 'enroll-token', '--name', 'mini'])).stdout.trimEnd();
  expect((await shell.run(line)).code).toBe(0);
  await waitForHost(laptop, 'mini', (h) => h.account?.presence === 'online');
  iptables('-I', agent.port);
  ends.push(() => iptables('-D', agent.port));
  return { relay, laptop, agent };
}

type Enrolled = Awaited<ReturnType<typeof enrolledBehindFirewall>>;

/**
 * A relay, a laptop signed in, a host enrolled, and its TCP port closed: the first session, session ls,
 * hosts ls and attach then run over whatever WebRTC finds.
 */
async function reachEnrolledHost(
  enrolled: Enrolled,
  want: 'p2p' | 'turn',
  beforeDial: () => Promise<void> = async () => {},
) {
  const { laptop, agent } = enrolled;
  await beforeDial();
  // Nothing answers at the published addresses now.
  const direct = await fetch(`https://127.0.0.1:${agent.port}/`).then(
    () => 'answered',
    () => 'refused',
  );
  expect(direct).toBe('refused');

  // The first link pairs with the enrollment secret, over the data channel.
  const made = await hangar(laptop, ['session', 'new', 'mini', '--name', 'work', ...BASH], 40_000);
  expect(made.stderr).toBe('');
  expect(made.code).toBe(0);
  const listing = await hangar(laptop, ['session', 'ls', 'mini', '--json'], 40_000);
  expect(listing.stderr).toBe('');
  expect(listing.code).toBe(0);
  const listed = JSON.parse(listing.stdout) as {
    sessions: { name: string }[];
  }[];
  expect(listed[0]!.sessions.map((s) => s.name)).toEqual(['work']);

  const hosts = await hostsLs(laptop);
  expect(hosts.find((h) => h.name === 'mini')).toMatchObject({ status: 'online', via: want });
  const table = await hangar(laptop, ['hosts', 'ls'], 40_000);
  expect(table.stdout).toMatch(new RegExp(`^mini\\s+online.*\\s+${want}\\s+\\d+(\\.\\d)? ms\\s+`, 'm'));

  await attachAndEcho(laptop, 'mini', 'work', cleanups);
}

/** The device's access token, as its core keeps it (to open sockets as that computer by hand). */
function accessToken(home: string): string {
  const db = new Database(join(home, 'hangar.db'), { readonly: true });
  try {
    return (db.prepare('SELECT access_token FROM relay_account').get() as { access_token: string }).access_token;
  } finally {
    db.close();
  }
}

// Each test runs a dozen commands that each dial through ICE (TURN: ~30 s, up to 60 s under load).
describe.skipIf(!canFirewall)(
  'WebRTC link to an enrolled host (iptables needed to close its port)',
  { timeout: 120_000 },
  () => {
    // One relay, laptop and host for these two (building them took a loaded CI machine ~10 s): the
    // first makes and attaches a session of its own, the second only opens sockets to the relay (the
    // first's commands and attach have ended, theirs closed) and fails a command; neither looks at
    // what the other did.
    describe('on one enrolled host', () => {
      const sharedCleanups = useCleanups(afterAll);
      let enrolled: Enrolled;
      beforeAll(async () => {
        enrolled = await enrolledBehindFirewall([], {}, sharedCleanups);
      });

      it('published addresses refuse: attach and session ls work over p2p, and hosts ls says p2p', async () => {
        await reachEnrolledHost(enrolled, 'p2p');
      });

      it('a computer holding the most connections to the relay is told so, not "relay unreachable", when a command must signal', async () => {
        const { relay, laptop } = enrolled;
        // Only WebRTC could reach it now (no relayed link: HANGAR_SPLICE=off), and WebRTC needs signaling.
        process.env.HANGAR_SPLICE = 'off';
        cleanups.push(() => delete process.env.HANGAR_SPLICE);
        // This computer's 32 connections to the relay (windows, other commands) are all open.
        const token = accessToken(laptop);
        const held: ReturnType<typeof rawDeviceSocket>[] = [];
        cleanups.push(() => held.forEach((s) => s.socket.close()));
        for (let i = 0; i < MAX_SOCKETS_PER_DEVICE; i++) {
          const socket = rawDeviceSocket(relay.url, token);
          held.push(socket);
          await waitFor(`socket ${i} ready`, () => socket.messages.some((m) => m.type === 'ready'));
        }

        const listing = await hangar(laptop, ['session', 'ls', 'mini'], 40_000);
        expect(listing.code).not.toBe(0);
        expect(listing.stderr).toMatch(/32 connections open to this relay/);
        expect(listing.stderr).toMatch(/let some end \(or stop them\) and try again/);
        expect(listing.stderr).not.toMatch(/no signaling socket/);
      });
    });

    // retry 1: the library deadlock over TURN that webrtc-natlab.test.ts describes (a command that
    // hangs until the test's timeout; caught here with gdb: README "Known issues").
    it.skipIf(!hasCoturn)(
      'with relay-only ICE on both ends, the link runs through coturn, with credentials renewed after the first expired: hosts ls says turn',
      { retry: 1 },
      async () => {
        const turn = await startCoturn();
        // libjuice's relay-only policy still lets a direct peer-reflexive pair form on loopback: the
        // computer's ICE binds 127.0.0.2, the host's 127.0.0.3, and UDP between the two is dropped, so
        // the only way is through coturn on 127.0.0.1.
        process.env.HANGAR_WEBRTC_POLICY = 'relay';
        process.env.HANGAR_WEBRTC_BIND_ADDRESS = '127.0.0.2';
        cleanups.push(() => {
          delete process.env.HANGAR_WEBRTC_POLICY;
          process.env.HANGAR_WEBRTC_BIND_ADDRESS = '127.0.0.1';
        });
        const udp = (action: '-I' | '-D', from: string, to: string) =>
          execFileSync('iptables', [action, 'INPUT', '-s', from, '-d', to, '-p', 'udp', '-j', 'DROP']);
        udp('-I', '127.0.0.2', '127.0.0.3');
        udp('-I', '127.0.0.3', '127.0.0.2');
        cleanups.push(() => {
          udp('-D', '127.0.0.2', '127.0.0.3');
          udp('-D', '127.0.0.3', '127.0.0.2');
        });
        // Credentials that last 3 s (coturn counts whole seconds), and the first link dialed only once
        // the host's first ones expired: the link comes up on the ones the relay renewed since, and
        // each command's dial on fresh ones of the computer.
        const ttlSeconds = 3;
        await reachEnrolledHost(
          await enrolledBehindFirewall(
            ['--turn', turn.uri, '--turn-secret-file', turn.secretFile, '--turn-ttl', String(ttlSeconds)],
            { HANGAR_WEBRTC_BIND_ADDRESS: '127.0.0.3' },
          ),
          'turn',
          () => new Promise((resolve) => setTimeout(resolve, (ttlSeconds + 1) * 1000)),
        );
      },
    );
  },
);
