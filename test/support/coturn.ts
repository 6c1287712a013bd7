import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * coturn as README ("Reaching hosts through NAT") documents it, with a secret only this test knows
 * (written 0600 to `dir`/turn-secret for the relay): the arguments of `turnserver`, listening and
 * relaying on `ip`. `loopbackPeers` only where both peers are on this machine; a real deployment
 * keeps loopback peers refused.
 */
export function coturnConfig(
  dir: string,
  ip: string,
  port: number,
  options: { loopbackPeers?: boolean } = {},
): { args: string[]; secretFile: string } {
  const secret = randomBytes(24).toString('hex');
  const secretFile = join(dir, 'turn-secret');
  writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
  const args = ['-n', '--listening-ip', ip, '--relay-ip', ip, '--listening-port', String(port)];
  args.push('--use-auth-secret', '--static-auth-secret', secret, '--realm', 'hangar');
  if (options.loopbackPeers) args.push('--allow-loopback-peers');
  args.push('--no-tls', '--no-dtls', '--no-cli', '--log-file', 'stdout', '--simple-log');
  return { args, secretFile };
}
