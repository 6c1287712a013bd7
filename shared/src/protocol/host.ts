import { z } from 'zod';

export const HostInfo = z.object({
  hostname: z.string(),
  os: z.string(),
  arch: z.string(),
  agent_version: z.string(),
  tmux_version: z.string().nullable(),
  session_limit: z.number().int().positive(),
});
export type HostInfo = z.infer<typeof HostInfo>;
