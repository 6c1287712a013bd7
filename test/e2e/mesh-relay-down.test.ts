import type { HostView } from '@hangar/shared';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { firewalledStack } from '../support/firewalled-stack.js';
import { openBashTerminal, openWindow } from '../support/live-window.js';
import { hangar, killTmuxServer, pairWith, startAgentProcess, type AgentProcess } from '../support/processes.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { dirFor, useCleanups } from '../support/cleanups.js';
import { TickingTerminal, until } from '../support/ticking-terminal.js';

/**
 * The relay killed while a window's core holds two links: one to a host it reaches directly
 * (through a loopback proxy the test can cut), one to a host behind a firewall that only the
 * relay's splice reaches. The direct link goes on, and comes back without the relay when its
 * connection drops; the other host says "relay unreachable", in the host list and to a command,
 * within 5 s. (relay-unreachable.test.ts covers the account's word on hosts and the way back.)
 */

process.env['HANGAR_WEBRTC'] = 'off';

const cleanups = useCleanups();
const dir = (prefix: string) => dirFor(cleanups, prefix);

describe('the relay down', { timeout: 180_000 }, () => {
  it('a direct link keeps running and reconnects without the relay; a host behind a firewall says "relay unreachable" within 5 s', async () => {
    // "mini": enrolled, behind the firewall (the splice is its only way in).
    const { relay, laptop } = await firewalledStack(cleanups);

    // "box": paired directly, reached through a proxy the test can cut (a dropped connection).
    const boxData = dir('box');
    const box: AgentProcess = await startAgentProcess(boxData, { logLevel: 'info' });
    cleanups.push(async () => {
      await box.stop();
      await killTmuxServer(boxData);
    });
    const proxy = await TcpProxy.start(box.port);
    cleanups.push(() => proxy[Symbol.asyncDispose]());
    await pairWith(laptop, 'box', box, proxy.address);

    const { window, until: windowShows } = await openWindow(laptop, cleanups);
    const named = (hosts: HostView[], name: string) => hosts.find((h) => h.name === name);
    await windowShows(
      (hosts) => named(hosts, 'mini')?.status === 'online' && named(hosts, 'box')?.status === 'online',
      60_000,
    );
    expect(named((await window.call('hosts.list', {})).hosts, 'mini')).toMatchObject({ via: 'relayed' });

    const { terminal, raw, statuses } = await openBashTerminal(window, 'box', 'ticks', cleanups);
    const stop = join(boxData, 'stop-ticking');
    cleanups.push(() => writeFileSync(stop, ''));
    const ticking = new TickingTerminal({ write: (text) => terminal.write(text), raw }, stop);
    await ticking.start();

    await relay.crash();
    const killed = Date.now();
    // The host that needs the relay: said in the list, then to a command that uses it.
    await windowShows((hosts) => named(hosts, 'mini')?.account?.presence === 'relay_unreachable', 5_000);
    const listed = Date.now() - killed;
    // Asked of the window's core (whose link to it went with the relay): said within 5 s.
    const began = Date.now();
    const asked = await window.call('sessions.list', { host: 'mini' }).then(
      () => new Error('listed the sessions of a host only the relay reaches, with the relay down'),
      (error: unknown) => error as Error,
    );
    const refused = Date.now() - began;
    expect(asked.message).toMatch(/relay unreachable/);
    // And by a command, on a core of its own (its start-up counted too: printed, not held to 5 s on a loaded machine).
    const commandBegan = Date.now();
    const used = await hangar(laptop, ['session', 'ls', 'mini']);
    const command = Date.now() - commandBegan;
    console.log(
      `[mesh-relay-down] relay killed → "relay unreachable": host list ${listed} ms, a call to the host behind the firewall ${refused} ms, hangar session ls ${command} ms`,
    );
    expect(used.code).not.toBe(0);
    expect(used.stderr).toMatch(/relay unreachable/);
    expect(refused).toBeLessThan(5_000);

    // The direct link went on all along…
    await ticking.more(20, 'ticks with the relay down', 10_000);
    expect(statuses).toEqual(['attached']);
    // …and a dropped connection to it comes back without the relay, the terminal resumed.
    proxy.cutAll();
    await until(() => statuses.includes('resumed'), 'the terminal resumed', 10_000);
    await ticking.more(20, 'ticks after the reconnect', 10_000);
    await ticking.finish(60, `statuses ${statuses.join(', ')}`);
    expect(named((await window.call('hosts.list', {})).hosts, 'box')).toMatchObject({
      status: 'online',
      via: 'direct',
    });
  });
});
