import { z } from 'zod';

export const HostInfo = z.object({
  hostname: z.string(),
  os: z.string(),
  arch: z.string(),
  agent_version: z.string(),
  tmux_version: z.string().nullable(),
  session_limit: z.number().int().positive(),
  /**
   * The host's enrollment on a relay, when it has one: its id there (what the account's host
   * list calls it, so a device can tell a directly paired host and an enrolled one are the same)
   * and whether its relay link is up now. Absent from agents older than enrollment.
   */
  relay: z
    .object({
      host_id: z.string().regex(/^host_[0-9a-f]{32}$/, 'expected a host id (host_ and 32 hex digits)'),
      relay_url: z.string().max(2048),
      connected: z.boolean(),
    })
    .nullable()
    .optional(),
});
export type HostInfo = z.infer<typeof HostInfo>;
