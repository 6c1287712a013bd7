import { fileURLToPath } from 'node:url';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NetworkInterfaceInfo } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { directAddresses, tailnetAddresses } from '../../src/relay/addresses.js';
import { readTailnet } from '../../src/relay/tailscale.js';

/** What an enrolled host publishes: only addresses its link server answers on. */

const STANDIN = fileURLToPath(new URL('../../../test/fixtures/tailscale/tailscale', import.meta.url));

const iface = (address: string, family: 'IPv4' | 'IPv6', internal = false) =>
  ({ address, family, internal, netmask: '', mac: '', cidr: null }) as unknown as NetworkInterfaceInfo;

const INTERFACES = {
  lo: [iface('127.0.0.1', 'IPv4', true), iface('::1', 'IPv6', true)],
  eth0: [iface('192.168.1.20', 'IPv4'), iface('2001:db8::20', 'IPv6'), iface('fe80::1', 'IPv6')],
  tailscale0: [iface('100.101.102.103', 'IPv4'), iface('fd7a:115c:a1e0::1', 'IPv6')],
};
const TAILNET = ['100.101.102.103', 'fd7a:115c:a1e0::1'];

describe('published addresses', () => {
  it('0.0.0.0: every IPv4 interface, loopback last, tailnet addresses left to the tailnet list', () => {
    expect(directAddresses({ host: '0.0.0.0', port: 7070 }, TAILNET, INTERFACES)).toEqual([
      '192.168.1.20:7070',
      '127.0.0.1:7070',
    ]);
  });

  it(':: : both families, without link-local addresses (a remote device cannot know their zone)', () => {
    expect(directAddresses({ host: '::', port: 7070 }, TAILNET, INTERFACES)).toEqual([
      '192.168.1.20:7070',
      '[2001:db8::20]:7070',
      '127.0.0.1:7070',
      '[::1]:7070',
    ]);
  });

  it('a loopback or a specific listen address: that address only', () => {
    expect(directAddresses({ host: '127.0.0.1', port: 7070 }, TAILNET, INTERFACES)).toEqual(['127.0.0.1:7070']);
    expect(directAddresses({ host: '192.168.1.20', port: 7070 }, TAILNET, INTERFACES)).toEqual(['192.168.1.20:7070']);
  });

  it('tailnet: its IPs then its MagicDNS name when the server answers there, none on loopback (saying why)', () => {
    const running = { state: 'running', ips: TAILNET, dnsName: 'mini.tail1234.ts.net' } as const;
    expect(tailnetAddresses({ host: '::', port: 7070 }, running).addresses).toEqual([
      '100.101.102.103:7070',
      '[fd7a:115c:a1e0::1]:7070',
      'mini.tail1234.ts.net:7070',
    ]);
    expect(tailnetAddresses({ host: '100.101.102.103', port: 7070 }, running).addresses).toEqual([
      '100.101.102.103:7070',
      'mini.tail1234.ts.net:7070',
    ]);
    const loopback = tailnetAddresses({ host: '127.0.0.1', port: 7070 }, running);
    expect(loopback.addresses).toEqual([]);
    expect(loopback.why).toMatch(/--listen 0\.0\.0\.0:7070/);
    expect(tailnetAddresses({ host: '0.0.0.0', port: 7070 }, { state: 'absent' }).addresses).toEqual([]);
  });
});

describe('reading Tailscale (the stand-in prints `tailscale status --json` as documented)', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    delete process.env['TAILSCALE_STANDIN_STATE'];
    while (cleanups.length > 0) await cleanups.pop()!();
  });

  async function state(node: object): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'hangar-tailscale-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'state.json'), JSON.stringify(node));
    process.env['TAILSCALE_STANDIN_STATE'] = join(dir, 'state.json');
  }

  it('running: the node’s IPs, IPv4 first, and its MagicDNS name without the trailing dot', async () => {
    await state({ backend: 'Running', ips: ['fd7a:115c:a1e0::1', '100.101.102.103'], dnsName: 'mini.tail1234.ts.net' });
    expect(await readTailnet([STANDIN])).toEqual({
      state: 'running',
      ips: ['100.101.102.103', 'fd7a:115c:a1e0::1'],
      dnsName: 'mini.tail1234.ts.net',
    });
  });

  it('logged out, stopped, or no tailscaled: no addresses, and never an error', async () => {
    await state({ backend: 'NeedsLogin', dnsName: 'mini.tail1234.ts.net' });
    expect(await readTailnet([STANDIN])).toEqual({ state: 'not-running', backend: 'NeedsLogin' });
    delete process.env['TAILSCALE_STANDIN_STATE'];
    expect(await readTailnet([STANDIN])).toMatchObject({
      state: 'not-running',
      backend: /doesn't appear to be running/,
    });
  });

  it('no tailscale installed: absent', async () => {
    expect(await readTailnet(['/nonexistent/tailscale', join(tmpdir(), 'no-such-tailscale')])).toEqual({
      state: 'absent',
    });
  });
});
