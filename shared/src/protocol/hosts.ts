import { z } from 'zod';

/** A host as the user names it on their computer ("mini", "vps-1", "local"). */
export const HostName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/i, {
  error: 'expected 1-32 letters, digits, "-" or "_", starting with a letter or digit',
});

/**
 * `host:port`, `[v6]:port`, or a bare host (port 7070). TLS is implied, so a scheme is refused
 * rather than silently ignored.
 */
export const HostAddress = z
  .string()
  .min(1)
  .max(300)
  .refine((value) => !/^[a-z]+:\/\//i.test(value), { error: 'give host:port without a scheme (TLS is implied)' })
  .refine((value) => parseHostAddress(value) !== undefined, { error: 'expected host:port, e.g. mini.tailnet:7070' });

export const DEFAULT_AGENT_PORT = 7070;

/** `allowAnyPort` accepts port 0 ("pick a free port"), which only makes sense for listening. */
export function parseHostAddress(
  value: string,
  options: { allowAnyPort?: boolean } = {},
): { host: string; port: number } | undefined {
  const v6 = /^\[([0-9a-f:.]+)\](?::(\d{1,5}))?$/i.exec(value);
  const plain = /^([a-z0-9.-]+)(?::(\d{1,5}))?$/i.exec(value);
  const match = v6 ?? plain;
  if (!match) return undefined;
  const port = match[2] === undefined ? DEFAULT_AGENT_PORT : Number(match[2]);
  if (port < (options.allowAnyPort ? 0 : 1) || port > 65535) return undefined;
  return { host: match[1]!, port };
}

export const HostRecord = z.object({
  name: HostName,
  address: HostAddress,
  agent_key: z.string().min(1),
  cert_fingerprint: z.string().min(1),
  embedded: z.boolean(),
  added_at: z.number().int(),
});
export type HostRecord = z.infer<typeof HostRecord>;
