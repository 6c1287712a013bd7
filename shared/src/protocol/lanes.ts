import { z } from 'zod';
import { ERROR_CODES } from '../errors.js';
import { ArtifactInfo, JobId } from './jobs.js';
import { PreviewPort } from './previews.js';

/**
 * Lanes (lane/PROTOCOL.md): a hot byte stream (a preview's TCP connection, an attached terminal)
 * on a TCP connection of its own to the link's port, sealed and relayed by native code. The link
 * grants them (`lane.grant`); a lane's first record says what it is for (`LaneHello`).
 */

const base64url = (bytes: number, what: string) => {
  const chars = Math.ceil((bytes * 4) / 3);
  const error = `expected ${what}: ${bytes} bytes, base64url (${chars} characters)`;
  return z.string().regex(new RegExp(`^[A-Za-z0-9_-]{${chars}}$`), { error });
};

export const LaneGrantResult = z.object({
  /** 16 random bytes, base64url: names the grant in each lane's preface. */
  grant_id: base64url(16, 'a grant id'),
  /** 32 random bytes, base64url: the lanes' keys derive from it; never leaves the two processes. */
  secret: base64url(32, 'a grant secret'),
});
export type LaneGrantResult = z.infer<typeof LaneGrantResult>;

/** Bytes of a HELLO, ACCEPT or REFUSE record's JSON, at most. */
export const MAX_LANE_CONTROL_BYTES = 4096;

export const LanePreviewHello = z.object({ purpose: z.literal('preview'), port: PreviewPort }).strict();
export const LaneTerminalHello = z
  .object({
    purpose: z.literal('terminal'),
    attachment_id: z.string().min(1).max(64),
    /** Bytes of keys the client wrote to the attachment's mux stream; it writes no more there. */
    input_offset: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  })
  .strict();

/** Like `artifact.fetch` (the path is looked up among the job's artifacts, never opened as given). */
export const LaneArtifactHello = z
  .object({
    purpose: z.literal('artifact'),
    id: JobId,
    path: z.string().min(1).max(4096),
    /** Byte offset to start from (what the client already has). */
    from: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  })
  .strict();

/** Like `job.logs` (raw bytes, never compressed: the lane's records are the framing). */
export const LaneLogHello = z
  .object({
    purpose: z.literal('log'),
    id: JobId,
    /** Default: the latest attempt. */
    attempt: z.number().int().positive().optional(),
    /** Byte offset to start from (what the client already wrote out). */
    from: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    /** Until the attempt ends (else EOF at the log's end as the agent sees it now). */
    follow: z.boolean(),
  })
  .strict();

/** A lane's record 0 from the client: what the lane is for. */
export const LaneHello = z.discriminatedUnion(
  'purpose',
  [LanePreviewHello, LaneTerminalHello, LaneArtifactHello, LaneLogHello],
  { error: "expected a lane purpose: 'preview', 'terminal', 'artifact' or 'log'" },
);
export type LaneHello = z.infer<typeof LaneHello>;
export type LanePurpose = LaneHello['purpose'];

/** The agent's record 0 when it takes a lane: what the purpose answers (preview: `source_port`). */
export const LaneAccept = z.record(z.string(), z.unknown());
export type LaneAccept = z.infer<typeof LaneAccept>;

export const LanePreviewAccept = z.object({
  /** The port the agent's connection to the preview comes from (the core's loop check). */
  source_port: PreviewPort,
});
export type LanePreviewAccept = z.infer<typeof LanePreviewAccept>;

/** ACCEPT of an `artifact` lane: the artifact's size and sha256 as recorded (the bytes [from, size) follow, then EOF). */
export const LaneArtifactAccept = ArtifactInfo.pick({ size: true, sha256: true });
export type LaneArtifactAccept = z.infer<typeof LaneArtifactAccept>;

/** ACCEPT of a `log` lane: the attempt whose log the bytes [from, …) are, then EOF once it is final (or now, without follow). */
export const LaneLogAccept = z.object({ attempt: z.number().int().positive() });
export type LaneLogAccept = z.infer<typeof LaneLogAccept>;

/** The agent's record 0 when it does not take a valid HELLO; it then closes the lane. */
export const LaneRefuse = z.object({ code: z.enum(ERROR_CODES), message: z.string().max(1024) });
export type LaneRefuse = z.infer<typeof LaneRefuse>;
