import { expect } from 'vitest';
import { dirFor, type Cleanups } from './cleanups.js';
import { firewalledHost, type FirewalledHost } from './firewalled-host.js';
import { enroll, relayFor, signupCli, startHostMachine, waitForHost } from './relay-stack.js';

export interface FirewalledStackOptions {
  /** Extra `hangar-relay serve` arguments. */
  relayArgs?: string[];
  /** A namespace of the test's own (then the test disposes of it). */
  net?: FirewalledHost;
  /** A relay of the test's own (a double in front of one) instead of a new one. */
  relayUrl?: string;
  agentArgs?: string[];
}

/**
 * A relay, a laptop signed in to it, and a host "mini" enrolled in that account, online there,
 * whose agent runs in a network namespace behind a firewall that lets nothing in: the relay is the
 * only way to it. Everything is undone with `cleanups`.
 */
export async function firewalledStack(cleanups: Cleanups, options: FirewalledStackOptions = {}) {
  const net = options.net ?? (await firewalledHost());
  if (!options.net) cleanups.push(() => net.dispose());
  const relayData = dirFor(cleanups, 'relay');
  const relay = options.relayUrl
    ? undefined
    : await relayFor(cleanups, relayData, 0, options.relayArgs ?? [], net.outsideIp);
  const relayUrl = options.relayUrl ?? relay!.url;
  const laptop = dirFor(cleanups, 'laptop');
  const signed = await signupCli(laptop, relayUrl, 'me@example.com');
  expect(signed.code, signed.stderr).toBe(0);
  const host = await startHostMachine(cleanups, { wrapper: net.wrapper, extraArgs: options.agentArgs ?? [] });
  await enroll(laptop, host, 'mini');
  await waitForHost(laptop, 'mini', (h) => h.account?.presence === 'online');
  return { net, relay: relay!, relayUrl, relayData, laptop, shell: host.shell, agent: host.agent };
}
