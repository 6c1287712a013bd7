// `hangar-agent install --token` and the relay's install line, against a real relay process
// (SQLite) and hangar-agent as npm installs it from a loopback registry: the token is spent in
// `hangar-agent enroll` (as the service user on a system install) before anything is installed,
// the service comes up enrolled and shows online on the relay, status shows the link, and an
// update waits until the new version is online there again. systemd is the stand-in of the
// installer's tests (test/fixtures/systemd: it runs the units for real); the account side is the
// shared RelayClient, as `hangar hosts enroll-token` will use it.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayClient, encodeEnrollToken, type HostPresence } from '@hangar/shared';
import { INSTALL_SH, npmEnv, publishAgent, readCalls } from '../support/agent-releases.mjs';
import { freePort, tempDir } from '../support/processes.js';
import { useInstallSandboxes, useInstallWork } from '../support/install-sandbox.js';
import { enrollLine, signup, type SignedIn } from '../../relay/test/support/relay-fixture.js';
import type { RelayProcess } from '../../relay/test/support/relay-process.js';
import { startTestRelayProcess } from '../support/relay-stack.js';

const exec = promisify(execFile);

let relay: RelayProcess;
let client: RelayClient;
let owner: SignedIn;
let bin: string;
const installer = useInstallWork('agent-install-relay');
const sandbox = useInstallSandboxes(() => installer);

beforeAll(async () => {
  // A system install's enroll runs as the service user, which must reach the package and data dir.
  chmodSync(installer.work, 0o755);
  relay = await startTestRelayProcess(join(installer.work, 'relay'));
  client = new RelayClient({ url: relay.url });
  owner = await signup(client);
  await publishAgent(installer.registry, join(installer.work, 'publish'), '0.1.0');
  await exec(
    'npm',
    [
      'install',
      '--global',
      '--prefix',
      join(installer.work, 'global'),
      'hangar-agent@0.1.0',
      '--registry',
      installer.registry.url,
    ],
    { env: npmEnv(installer.registry, installer.work), timeout: 240_000 },
  );
  bin = join(installer.work, 'global', 'bin', 'hangar-agent');
}, 300_000);

afterAll(async () => {
  await relay?.stop();
});

/** `hangar-agent install --user` with the enrollment line, in a fresh sandbox, on a free port. */
async function userInstallWith(line: string) {
  const box = sandbox();
  const install = await run(
    bin,
    ['install', '--user', '--listen', `127.0.0.1:${await freePort()}`, '--token', line],
    box.env,
  );
  return { box, install };
}

async function run(program: string, args: string[], env: NodeJS.ProcessEnv, timeout = 180_000, input = '') {
  const running = exec(program, args, { env, timeout });
  running.child.stdin!.end(input);
  return running.then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({
      code: error.code ?? -1,
      stdout: error.stdout ?? '',
      stderr: error.stderr ?? String(error),
    }),
  );
}

/** What `hangar hosts enroll-token` prints, for `owner`'s account. */
async function ownerLine(name = 'mini'): Promise<{ line: string; tokenId: string }> {
  const { line, token } = await enrollLine(client, owner, name);
  return { line, tokenId: token.token_id };
}

async function listedHost(hostId: string): Promise<HostPresence | undefined> {
  const listed = await client.call('hosts.list', {}, { accessToken: owner.session.access_token });
  return listed.hosts.find((host) => host.host_id === hostId);
}

/** Polls the relay's host list until `check` holds for the host, within 15 s. */
async function waitForHost(hostId: string, what: string, check: (host: HostPresence) => boolean) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const host = await listedHost(hostId);
    if (host !== undefined && check(host)) return host;
    if (Date.now() > deadline) throw new Error(`the relay did not show ${what} within 15 s: ${JSON.stringify(host)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const modeOf = (path: string) => statSync(path).mode & 0o777;

describe('hangar-agent install --token', () => {
  it('a dry run shows the enrollment without spending the token; the install then enrolls, and the host is online on the relay', async () => {
    const box = sandbox();
    const port = await freePort();
    const { line, tokenId } = await ownerLine();
    const args = ['install', '--user', '--listen', `127.0.0.1:${port}`, '--token', line, '--name', 'mini'];

    const dry = await run(bin, [...args, '--dry-run'], box.env);
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(
      `enroll ${join(box.home, '.hangar-agent')} with the relay ${relay.url} (token ${tokenId}, single use)`,
    );
    expect(dry.stdout).toContain(`the relay at ${relay.url} answers`);
    expect(dry.stdout).toContain('the token was not used');
    expect(dry.stdout).not.toContain(line);
    expect(readdirSync(box.home)).toEqual([]);
    expect(readCalls(box.state)).toEqual([]);

    const install = await run(bin, args, box.env);
    expect(install.stderr).toBe('');
    expect(install.code).toBe(0);
    expect(install.stdout).toMatch(/enrolled as "mini" \(host_[0-9a-f]{32}\)/);
    expect(install.stdout).toContain(`online on ${relay.url}`);
    const hostId = /\((host_[0-9a-f]{32})\)/.exec(install.stdout)![1]!;
    // The install waited for the agent to hold its relay link: the relay lists it online now.
    expect(await listedHost(hostId)).toMatchObject({ name: 'mini', online: true });
    await waitForHost(hostId, 'its signed addresses', (host) =>
      Boolean(host.record?.addresses.includes(`127.0.0.1:${port}`)),
    );

    // enroll made the keys and database as this user, private to it.
    const data = join(box.home, '.hangar-agent');
    expect(modeOf(data)).toBe(0o700);
    expect(modeOf(join(data, 'identity'))).toBe(0o700);
    for (const file of ['identity/agent_ed25519.pem', 'identity/tls.key', 'agent.db']) {
      expect({ file, mode: modeOf(join(data, file)) }).toEqual({ file, mode: 0o600 });
    }

    const status = await run(bin, ['status', '--json'], box.env);
    expect(JSON.parse(status.stdout).relay).toMatchObject({
      state: 'online',
      relay_url: relay.url,
      host_id: hostId,
      name: 'mini',
      error: null,
      first_links_pending: 1,
    });
    const text = await run(bin, ['status'], box.env);
    expect(text.stdout).toMatch(new RegExp(`^relay: +online on ${relay.url} as "mini" \\(${hostId}\\) since `, 'm'));
  }, 240_000);

  it('status says what the relay link last failed with once the relay is gone', async () => {
    const own = await startTestRelayProcess(join(installer.work, 'gone-relay'));
    try {
      const ownClient = new RelayClient({ url: own.url });
      const ownOwner = await signup(ownClient);
      const token = await ownClient.call(
        'hosts.enroll_token',
        { name: 'gone' },
        { accessToken: ownOwner.session.access_token },
      );
      const line = encodeEnrollToken({
        v: 1,
        r: own.url,
        i: token.token_id,
        s: token.relay_secret,
        e: randomBytes(32).toString('hex'),
        d: ownOwner.key.publicKey,
      });
      const { box, install } = await userInstallWith(line);
      expect(install.code).toBe(0);
      await own.stop();

      const deadline = Date.now() + 20_000;
      let relayLine = '';
      while (Date.now() < deadline && !/last error/.test(relayLine)) {
        relayLine = /^relay: .*$/m.exec((await run(bin, ['status'], box.env)).stdout)?.[0] ?? '';
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(relayLine).toMatch(
        new RegExp(
          `^relay: +(offline|connecting): relay ${own.url} as "[^"]+" \\(host_[0-9a-f]{32}\\) since .*; last error: .+`,
        ),
      );
    } finally {
      await own.stop();
    }
  }, 120_000);

  it('refuses a token the relay already took before it installs or changes anything', async () => {
    const { line } = await ownerLine('spent');
    const elsewhere = tempDir('spent-elsewhere');
    try {
      const spent = await run(bin, ['enroll', '--data', elsewhere, '--token', line], process.env);
      expect(spent.code).toBe(0);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }

    const { box, install } = await userInstallWith(line);
    expect(install.code).toBe(1);
    expect(install.stderr).toMatch(/already used/i);
    expect(install.stderr).toContain('Nothing was installed');
    // No data dir, no unit, no version, no systemctl call: as if it had not run.
    expect(readdirSync(box.home)).toEqual([]);
    expect(readCalls(box.state)).toEqual([]);
  }, 120_000);

  it('a system install enrolls as the service user: its data dir, keys and database are that user’s, 0700 and 0600', async () => {
    const box = sandbox();
    const port = await freePort();
    const { line } = await ownerLine('vps');
    // As on a real system: /var/lib is there and open (made by the plan, it would be 0700 like the data dir).
    mkdirSync(join(box.root, 'var/lib'), { recursive: true, mode: 0o755 });
    // The line on stdin (`--token -`), as someone keeping it out of shell history would.
    const install = await run(
      bin,
      ['install', '--system', '--listen', `127.0.0.1:${port}`, '--token', '-', '--name', 'vps'],
      box.env,
      180_000,
      `${line}\n`,
    );
    expect(install.stderr).toBe('');
    expect(install.code).toBe(0);
    const hostId = /\((host_[0-9a-f]{32})\)/.exec(install.stdout)![1]!;
    expect(await listedHost(hostId)).toMatchObject({ name: 'vps', online: true });

    const uid = Number(/^hangar:x:(\d+)/m.exec(readFileSync(join(box.root, 'etc/passwd'), 'utf8'))![1]);
    const data = join(box.root, 'var/lib/hangar');
    const owned = (path: string) => ({ path, uid: statSync(join(data, path)).uid, mode: modeOf(join(data, path)) });
    expect(owned('.')).toEqual({ path: '.', uid, mode: 0o700 });
    expect(owned('identity')).toEqual({ path: 'identity', uid, mode: 0o700 });
    for (const file of ['identity/agent_ed25519.pem', 'identity/tls.key', 'agent.db']) {
      expect(owned(file)).toEqual({ path: file, uid, mode: 0o600 });
    }
    const status = JSON.parse((await run(bin, ['status', '--system', '--json'], box.env)).stdout);
    expect(status.relay).toMatchObject({ state: 'online', host_id: hostId });
  }, 240_000);
});

describe("the relay's install line", () => {
  it('curl …/install.sh | sh -s -- --token installs, enrolls and brings the host online; an update waits until it is online there again, and one that never gets there is rolled back', async () => {
    const box = sandbox();
    const port = await freePort();
    // Run as root, the line makes a system install, as on a fresh VPS: npm's global prefix is a
    // temp dir here (never this machine's), /var/lib is there and open as on a real system.
    const npmGlobal = join(box.dir, 'npm-global');
    box.env = { ...box.env, npm_config_prefix: npmGlobal, PATH: `${join(npmGlobal, 'bin')}:${box.env['PATH']}` };
    mkdirSync(join(box.root, 'var/lib'), { recursive: true, mode: 0o755 });
    const { line } = await ownerLine('line');
    const served = await fetch(`${relay.url}/install.sh`);
    expect(Buffer.from(await served.arrayBuffer()).equals(readFileSync(INSTALL_SH))).toBe(true);

    // Exactly the app's line, plus where this test's registry and address are.
    const script = `curl -fsSL ${relay.url}/install.sh | sh -s -- --token ${line} --registry ${installer.registry.url} --listen 127.0.0.1:${port}`;
    const install = await run('/bin/sh', ['-c', script], box.env, 300_000);
    expect(install).toMatchObject({ code: 0, stderr: expect.not.stringMatching(/error/i) });
    expect(install.stdout).toContain('It will:');
    expect(install.stdout).toContain('--token hgr1… (hidden)');
    expect(install.stdout).toContain('hangar-agent 0.1.0 is running');
    const hostId = /\((host_[0-9a-f]{32})\)/.exec(install.stdout)![1]!;
    expect(await listedHost(hostId)).toMatchObject({ online: true });

    expect(install.stdout).toContain('systemd system service running as hangar');
    const agent = join(npmGlobal, 'bin', 'hangar-agent');
    await publishAgent(installer.registry, box.dir, '0.2.0');
    const update = await run(agent, ['update'], box.env);
    expect(update.stderr).toBe('');
    expect(update.code).toBe(0);
    expect(update.stdout).toMatch(
      new RegExp(`hangar-agent 0\\.2\\.0 answers \\(pid \\d+\\) and is online on ${relay.url} after \\d+ ms`),
    );
    await waitForHost(hostId, 'version 0.2.0 online', (host) => host.online && host.record?.version === '0.2.0');

    // A release that answers locally but never reaches the relay: rolled back once the health
    // timeout is out (10 s here with --health-timeout, not the default 30 s: nothing comes of
    // waiting longer for a release that will never be online; the rollback is given the 30 s).
    await publishAgent(installer.registry, box.dir, '0.3.0', { relayCutOff: true });
    const cutOff = await run(agent, ['update', '--health-timeout', '10'], box.env);
    expect(cutOff.code).toBe(1);
    expect(cutOff.stdout).toContain('did not answer within 10 s');
    expect(cutOff.stdout).toContain(`not online on the relay ${relay.url}`);
    expect(cutOff.stderr).toContain('the update to 0.3.0 failed');
    expect(cutOff.stderr).toContain('rolled back to 0.2.0, which answers again');
    await waitForHost(hostId, 'version 0.2.0 online again', (host) => host.online && host.record?.version === '0.2.0');
    const status = JSON.parse((await run(agent, ['status', '--json'], box.env)).stdout);
    expect(status.version).toMatchObject({ current: '0.2.0', running: '0.2.0' });
    expect(status.relay).toMatchObject({ state: 'online', host_id: hostId });
  }, 420_000);
});
