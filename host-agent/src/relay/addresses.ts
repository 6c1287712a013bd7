import { isIP } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import type { TailnetStatus } from './tailscale.js';

/**
 * The addresses an enrolled host publishes, so that a device can reach it later (until WebRTC,
 * the only way it can). Only addresses the link server actually answers on: a listen address of
 * 0.0.0.0 or :: means every interface (plus loopback, for a device on this machine); a loopback
 * listen means loopback only; any other listen address means that one address.
 */

export interface ListenAddress {
  host: string;
  port: number;
}

/** The record's lists hold at most 32 entries each (PresenceRecord). */
const MAX_ADDRESSES = 32;

export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/**
 * Direct addresses. Tailnet addresses are left out here (they are published as tailnet), and so
 * are IPv6 link-local ones (they need a zone a remote device cannot know).
 */
export function directAddresses(
  listen: ListenAddress,
  tailnetIps: readonly string[] = [],
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
): string[] {
  if (!isWildcard(listen.host)) return [hostPort(listen.host, listen.port)];
  // Node listens dual-stack on ::; on 0.0.0.0, IPv4 only.
  const families = listen.host === '0.0.0.0' ? ['IPv4'] : ['IPv4', 'IPv6'];
  const skip = new Set(tailnetIps);
  const external: string[] = [];
  const loopback: string[] = [];
  for (const entries of Object.values(interfaces)) {
    for (const entry of entries ?? []) {
      if (!families.includes(entry.family) || skip.has(entry.address)) continue;
      if (entry.family === 'IPv6' && /^fe80:/i.test(entry.address)) continue;
      (entry.internal ? loopback : external).push(hostPort(entry.address, listen.port));
    }
  }
  return [...new Set([...external, ...loopback])].slice(0, MAX_ADDRESSES);
}

/**
 * Tailnet addresses (its IPs, then its MagicDNS name) when the link server answers on them:
 * listening everywhere, or on one of the tailnet IPs. A loopback listen publishes none (a device
 * on the tailnet could not connect); `why` then says so, for the log.
 */
export function tailnetAddresses(
  listen: ListenAddress,
  tailnet: TailnetStatus,
): { addresses: string[]; why: string | null } {
  if (tailnet.state !== 'running') return { addresses: [], why: null };
  const ips = isWildcard(listen.host)
    ? tailnet.ips.filter((ip) => listen.host !== '0.0.0.0' || isIP(ip) === 4)
    : tailnet.ips.filter((ip) => ip === listen.host);
  if (ips.length === 0) {
    return {
      addresses: [],
      why: isLoopback(listen.host)
        ? `Tailscale runs here, but the agent listens on ${listen.host} only: to be reachable on the tailnet, serve with --listen 0.0.0.0:${listen.port}`
        : null,
    };
  }
  const name = tailnet.dnsName ? [hostPort(tailnet.dnsName, listen.port)] : [];
  return { addresses: [...ips.map((ip) => hostPort(ip, listen.port)), ...name].slice(0, MAX_ADDRESSES), why: null };
}
