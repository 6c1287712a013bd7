import { afterEach, describe, expect, it } from 'vitest';
import { startRelayProcess, type RelayProcess } from '../../relay/test/support/relay-process.js';
import { firewalledHost } from '../support/firewalled-host.js';
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
import { HostShell, hostsLs, signupCli, waitForHost } from '../support/relay-stack.js';

/**
 * The relayed path, end to end: a real relay, a real agent in a network namespace behind a
 * firewall that lets nothing in (so no address it publishes answers), the hangar command here.
 * The relay splices the device's connection with one the agent opens, and the same end-to-end
 * TLS link runs inside.
 */

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function dir(prefix: string): string {
  const made = tempDir(prefix);
  cleanups.push(() => removeDir(made));
  return made;
}

async function relayOn(ip: string, data: string, extra: string[] = [], port = 0): Promise<RelayProcess> {
  const relay = await startRelayProcess([
    '--listen',
    `${ip}:${port}`,
    '--data',
    data,
    '--password-hash-cost',
    '10',
    '--rate-limit-scale',
    '100',
    ...extra,
  ]);
  cleanups.push(() => relay.stop());
  return relay;
}

/** An enrolled host behind the firewall, signed-in laptop here; the host is online on the relay. */
async function firewalledStack(relayArgs: string[] = []) {
  const net = await firewalledHost();
  cleanups.push(() => net.dispose());
  const relayData = dir('relay');
  const relay = await relayOn(net.outsideIp, relayData, relayArgs);
  const laptop = dir('laptop');
  const signed = await signupCli(laptop, relay.url, 'me@example.com');
  expect(signed.code, signed.stderr).toBe(0);
  const shell = new HostShell();
  const agent = await startAgentProcess(shell.agentData, { logLevel: 'info', wrapper: net.wrapper });
  cleanups.push(async () => {
    await agent.stop();
    await killTmuxServer(shell.agentData);
    removeDir(shell.home);
  });
  const made = await hangar(laptop, ['hosts', 'enroll-token', '--name', 'mini']);
  expect(made.code, made.stderr).toBe(0);
  const ran = await shell.run(made.stdout.trimEnd());
  expect(ran.code, ran.stderr).toBe(0);
  await waitForHost(laptop, 'mini', (h) => h.account?.presence === 'online');
  return { net, relay, relayData, laptop, shell, agent };
}

describe('the relayed path (splice)', () => {
  it('a host none of whose addresses answers is reached through the relay: sessions, attach, a job; hosts ls says relayed', async () => {
    const { laptop, agent } = await firewalledStack();
    // What it published is its address in its own namespace: nothing answers there from here.
    const listed = (await hostsLs(laptop)).find((h) => h.name === 'mini')!;
    expect(listed.address).toBe(`127.0.0.1:${agent.port}`);

    // The first link pairs with the enrollment line's secret, inside the splice.
    const made = await hangar(laptop, ['session', 'new', 'mini', '--name', 'work', ...BASH]);
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    const sessions = await hangar(laptop, ['session', 'ls', 'mini', '--json']);
    expect(sessions.code, sessions.stderr).toBe(0);
    expect((JSON.parse(sessions.stdout) as { sessions: { name: string }[] }[])[0]!.sessions.map((s) => s.name)).toEqual(
      ['work'],
    );
    expect((await hostsLs(laptop)).find((h) => h.name === 'mini')).toMatchObject({ status: 'online', via: 'relayed' });
    expect(agent.stderr()).toMatch(/a device asked for a relayed link/);

    const attached = new AttachedCli(laptop, ['mini', 'work']);
    cleanups.push(() => attached[Symbol.asyncDispose]());
    await attached.waitForText('$ ');
    attached.type('echo rel""ayed\r');
    await attached.waitForText(/^relayed\s*$/m);
    attached.type('\x1d');
    expect(await attached.waitForExit()).toBe(0);

    const job = await hangar(
      laptop,
      ['run', '--host', 'mini', '--executor', 'shell', '-c', 'echo job-through-relay'],
      60_000,
    );
    expect(job.stderr).not.toMatch(/error/i);
    expect(job.code).toBe(0);
    expect(job.stdout).toContain('job-through-relay');
  });
});
