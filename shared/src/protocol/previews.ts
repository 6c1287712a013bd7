import { z } from 'zod';
import { StreamId } from './sessions.js';

/**
 * Previews: a TCP port on a host (a dev server) served on the user's computer through the link.
 * The agent forwards only to ports that a paired device registered, and only on the host's
 * loopback; the key is the port, since one port is one server.
 */
export const PreviewPort = z
  .number({ error: 'expected a port number' })
  .int({ error: 'expected a whole port number' })
  .min(1, { error: 'a port is 1-65535' })
  .max(65535, { error: 'a port is 1-65535' });

/** A name for people ("web", "storybook"); printable, no control characters. */
export const PreviewLabel = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[^\p{Cc}]+$/u, { error: 'a label has no control characters' });

export const PreviewInfo = z.object({
  port: PreviewPort,
  label: PreviewLabel.nullable(),
  /** Milliseconds since the epoch. */
  created_at: z.number().int(),
  /** Something listens on the host's loopback on this port now. */
  listening: z.boolean(),
});
export type PreviewInfo = z.infer<typeof PreviewInfo>;

/** A TCP port something listens on, reachable on the host's loopback: a preview candidate. */
export const ListeningPort = z.object({
  port: PreviewPort,
  /** The address it is bound to: 127.0.0.1, ::1, 0.0.0.0 or ::. */
  address: z.string().max(64),
  /** The owning process, when the agent may see it (its own user's processes). */
  pid: z.number().int().positive().nullable(),
  /** Its command line, shortened (`node vite --port 5173`): says more than a process name. */
  process: z.string().max(256).nullable(),
});
export type ListeningPort = z.infer<typeof ListeningPort>;

export const PreviewListResult = z.object({
  previews: z.array(PreviewInfo),
  /** Listening ports that are not previews yet (the agent's own port left out). */
  listening: z.array(ListeningPort),
});
export type PreviewListResult = z.infer<typeof PreviewListResult>;

export const PreviewAddParams = z.object({ port: PreviewPort, label: PreviewLabel.optional() });
export const PreviewPortParams = z.object({ port: PreviewPort });
/**
 * Whether the calling link watches the host's listening ports: while one linked client does, the
 * agent looks every ~2 s (Linux; ~10 s elsewhere) and sends previews.changed when a port starts
 * or stops listening. Nobody watching: no looks. A link's watch ends with the link.
 */
export const PreviewWatchParams = z.object({ watch: z.boolean() }).strict();

/**
 * One TCP connection to a preview, on the stream the client opened (`stream_id`). The agent
 * connects to the port on its loopback before answering; the client writes after the answer.
 * Either end closes the stream with {code: 'eof'} when its side of the connection ended, or
 * with an error code when it broke; `preview_removed` when the preview was unregistered.
 */
export const PreviewConnectParams = z.object({ port: PreviewPort, stream_id: StreamId });
export const PreviewConnectResult = z.object({
  /** Which loopback address answered (dev servers bind 127.0.0.1 or ::1 alone). */
  address: z.enum(['127.0.0.1', '::1']),
  /**
   * The port the agent's connection comes from. When the host is this computer and nothing else
   * listens on the port, the agent reaches the preview's own listener: the core spots the loop
   * by this port among the connections it accepted.
   */
  source_port: PreviewPort,
});

/** A preview was added or removed, or a port started or stopped listening: the whole picture. */
export const PreviewsChangedEvent = PreviewListResult;

/**
 * Both ends open a preview stream with this window. Loopback measured: 256 KiB (the terminal
 * default) held a download to ~40 MB/s; a page's big bundles and source maps want more.
 */
export const PREVIEW_STREAM_WINDOW = 1024 * 1024;

/** Close code of a preview stream whose side of the TCP connection ended normally. */
export const PREVIEW_EOF = 'eof';
export const PREVIEW_REMOVED = 'preview_removed';

/**
 * Largest data frame a preview connection sends: one socket read (Node reads up to 64 KiB at a
 * time) becomes one frame, and the other end one socket write, instead of two of each at the
 * link's 32 KiB default. Fairness does not suffer: streams still take turns frame by frame.
 */
export const PREVIEW_FRAME_BYTES = 64 * 1024;
