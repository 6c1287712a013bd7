import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import { platform } from 'node:os';
import { z } from 'zod';

/**
 * This machine's tailnet addresses, from `tailscale status --json` (shared/research/mesh.md §1:
 * the CLI is one process and one JSON parse on every platform, where the LocalAPI has three
 * transports). The fields read are Tailscale's ipnstate.Status: `BackendState` ("Running" when
 * connected; NoState, NeedsLogin, NeedsMachineAuth, Stopped, Starting otherwise), `Self.TailscaleIPs`
 * (falling back to the top-level `TailscaleIPs`) and `Self.DNSName` (the MagicDNS name, with a
 * trailing dot). Tailscale calls the format subject to change, so everything else is ignored and
 * what is missing reads as "no addresses". No Tailscale, or one that is not up, is never an error.
 */

export type TailnetStatus =
  | { state: 'running'; ips: string[]; dnsName: string | null }
  /** No tailscale CLI here. */
  | { state: 'absent' }
  /** Installed but not connected: BackendState says how, or tailscaled is not running at all. */
  | { state: 'not-running'; backend: string }
  /** It answered something this code cannot read (for the log). */
  | { state: 'unreadable'; message: string };

const PeerSelf = z.object({
  DNSName: z.string().optional(),
  TailscaleIPs: z.array(z.string()).nullable().optional(),
});
const StatusJson = z.object({
  BackendState: z.string(),
  TailscaleIPs: z.array(z.string()).nullable().optional(),
  Self: PeerSelf.nullable().optional(),
});

/** Where the CLI lives: on PATH, and on macOS inside the app (the App Store and standalone builds). */
export function tailscaleCandidates(os = platform()): string[] {
  return os === 'darwin' ? ['tailscale', '/Applications/Tailscale.app/Contents/MacOS/Tailscale'] : ['tailscale'];
}

const TIMEOUT_MS = 3_000;

export async function readTailnet(candidates = tailscaleCandidates()): Promise<TailnetStatus> {
  for (const file of candidates) {
    const ran = await run(file);
    if (ran === 'absent') continue;
    // No JSON and a failure: the CLI could not reach tailscaled ("doesn't appear to be running").
    if (ran.stdout.trim() === '' && ran.failure !== undefined) {
      return { state: 'not-running', backend: `tailscaled unreachable: ${ran.failure.slice(0, 200)}` };
    }
    return parseTailscaleStatus(ran.stdout, ran.failure);
  }
  return { state: 'absent' };
}

/** The part of the answer that matters, from the CLI's stdout (exported for tests). */
export function parseTailscaleStatus(stdout: string, failure?: string): TailnetStatus {
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch (error) {
    const why = failure ?? (error instanceof Error ? error.message : String(error));
    return { state: 'unreadable', message: `tailscale status --json: ${why.slice(0, 200)}` };
  }
  const parsed = StatusJson.safeParse(json);
  if (!parsed.success) {
    return { state: 'unreadable', message: `tailscale status --json: ${parsed.error.issues[0]?.message ?? ''}` };
  }
  const status = parsed.data;
  if (status.BackendState !== 'Running') return { state: 'not-running', backend: status.BackendState };
  const ips = (status.Self?.TailscaleIPs ?? status.TailscaleIPs ?? []).filter((ip) => isIP(ip) !== 0);
  // IPv4 first: more networks route it, and it is what people recognise (100.x.y.z).
  ips.sort((a, b) => isIP(a) - isIP(b));
  const name = status.Self?.DNSName?.replace(/\.$/, '') ?? '';
  const dnsName = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(name) ? name : null;
  return { state: 'running', ips, dnsName };
}

function run(file: string): Promise<{ stdout: string; failure?: string } | 'absent'> {
  return new Promise((resolve) => {
    execFile(
      file,
      ['status', '--json'],
      { timeout: TIMEOUT_MS, maxBuffer: 8 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) return resolve({ stdout });
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return resolve('absent');
        // Some versions exit 1 while printing the JSON (stopped, logged out): the JSON still says why.
        resolve({ stdout, failure: stderr.trim().split('\n')[0] || error.message });
      },
    );
  });
}
