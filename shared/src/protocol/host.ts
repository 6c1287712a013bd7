import { z } from 'zod';
import { HostTaskCapabilities } from './tasks.js';

/**
 * What an installed agent knows of its own updates: the channel it follows, the version it runs,
 * the channel's version when it last asked its registry, and whether `hangar-agent update` would
 * change anything. Absent (null) on an agent run by hand, which follows no channel.
 */
export const HostUpdate = z.object({
  channel: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'expected a channel name like stable'),
  current: z.string().max(64),
  latest: z.string().max(64).nullable(),
  available: z.boolean(),
  checked_at: z.number().int().nullable(),
  /** Why the last check failed (offline, registry down), in words; null after a good one. */
  error: z.string().max(500).nullable(),
});
export type HostUpdate = z.infer<typeof HostUpdate>;

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
  /** "Update available" for the app; absent from older agents, null where the agent is not installed. */
  update: HostUpdate.nullable().optional(),
  /** What it offers agent tasks (tasks.ts); absent from agents older than tasks. */
  tasks: HostTaskCapabilities.optional(),
});
export type HostInfo = z.infer<typeof HostInfo>;
