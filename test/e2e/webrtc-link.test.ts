import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import type { RelayProcess } from '../../relay/test/support/relay-process.js';
import { AttachedCli } from '../support/pty-client.js';
import {
  BASH,
  hangar,
  killTmuxServer,
  removeDir,
  startAgentProcess,
  tempDir,
  type AgentProcess,
} from '../support/processes.js';
import { HostShell, hostsLs, signupCli, startTestRelayProcess, waitForHost } from '../support/relay-stack.js';

/**
 * An enrolled host none of whose published addresses answers is reached over WebRTC: the device
 * offers through the relay's signaling route, the agent answers, the data channel carries the same
 * signed link. On loopback (ICE bound to 127.0.0.1: libjuice gathers no loopback candidate
 * otherwise); the agent's TCP port refuses connections (an iptables rule this test adds and
 * removes), so nothing but WebRTC can reach it.
 */

process.env.HANGAR_WEBRTC_BIND_ADDRESS = '127.0.0.1';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function dir(prefix: string): string {
  const made = tempDir(prefix);
  cleanups.push(() => removeDir(made));
  return made;
}

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

let canFirewall = true;
try {
  execFileSync('iptables', ['-L', 'INPUT', '-n'], { stdio: 'ignore' });
} catch {
  canFirewall = false;
}

describe.skipIf(!canFirewall)('WebRTC link to an enrolled host (iptables needed to close its port)', () => {
  it('published addresses refuse: attach and session ls work over p2p, and hosts ls says p2p', async () => {
    const relay: RelayProcess = await startTestRelayProcess(dir('relay'));
    cleanups.push(() => relay.stop());
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, 'me@example.com')).code).toBe(0);
    const shell = new HostShell();
    const agent: AgentProcess = await startAgentProcess(shell.agentData, { logLevel: 'info' });
    cleanups.push(async () => {
      await agent.stop();
      await killTmuxServer(shell.agentData);
      removeDir(shell.home);
    });
    const line = (await hangar(laptop, ['hosts', 'enroll-token', '--name', 'mini'])).stdout.trimEnd();
    expect((await shell.run(line)).code).toBe(0);
    await waitForHost(laptop, 'mini', (h) => h.account?.presence === 'online');

    iptables('-I', agent.port);
    cleanups.push(() => iptables('-D', agent.port));
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
    const listed = JSON.parse((await hangar(laptop, ['session', 'ls', 'mini', '--json'], 40_000)).stdout) as {
      sessions: { name: string }[];
    }[];
    expect(listed[0]!.sessions.map((s) => s.name)).toEqual(['work']);

    const hosts = await hostsLs(laptop);
    expect(hosts.find((h) => h.name === 'mini')).toMatchObject({ status: 'online', via: 'p2p' });
    const table = await hangar(laptop, ['hosts', 'ls'], 40_000);
    expect(table.stdout).toMatch(/^mini\s+online.*\s+p2p\s+\d+ ms\s+/m);

    const attached = new AttachedCli(laptop, ['mini', 'work']);
    cleanups.push(() => attached[Symbol.asyncDispose]());
    await attached.waitForText('$ ');
    attached.type('echo hel""lo\r');
    await attached.waitForText(/^hello\s*$/m);
    attached.type('\x1d');
    expect(await attached.waitForExit()).toBe(0);
  });
});
