import { z } from 'zod';
import { ERROR_CODES } from '../errors.js';
import { SCHEMA_VERSION } from './schema-version.js';

export { SCHEMA_VERSION };
export const SchemaVersion = z.literal(SCHEMA_VERSION, {
  error: `schema_version must be ${SCHEMA_VERSION}; update Hangar on both ends`,
});

export const ErrorShapeSchema = z.object({
  code: z.enum(ERROR_CODES),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});
/** An error as it crosses a link or IPC: what HangarError.toJSON gives and HangarError.from takes. */
export type ErrorShape = z.infer<typeof ErrorShapeSchema>;

export const RequestId = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const ControlRequest = z.object({
  schema_version: SchemaVersion,
  kind: z.literal('request'),
  id: RequestId,
  method: z.string().min(1).max(64),
  params: z.unknown(),
});
export type ControlRequest = z.infer<typeof ControlRequest>;

export const ControlResponse = z.discriminatedUnion('ok', [
  z.object({
    schema_version: SchemaVersion,
    kind: z.literal('response'),
    id: RequestId,
    ok: z.literal(true),
    result: z.unknown(),
  }),
  z.object({
    schema_version: SchemaVersion,
    kind: z.literal('response'),
    id: RequestId,
    ok: z.literal(false),
    error: ErrorShapeSchema,
  }),
]);
export type ControlResponse = z.infer<typeof ControlResponse>;

export const ControlEvent = z.object({
  schema_version: SchemaVersion,
  kind: z.literal('event'),
  event: z.string().min(1).max(64),
  data: z.unknown(),
});
export type ControlEvent = z.infer<typeof ControlEvent>;

/** Everything that travels on the control stream once the link is authenticated. */
export const ControlMessage = z.union([ControlRequest, ControlResponse, ControlEvent]);
export type ControlMessage = z.infer<typeof ControlMessage>;

/** Reason carried by a stream or link close. */
export const CloseReason = z.object({
  code: z.string().max(64),
  message: z.string().max(1024),
  exit_code: z.number().int().nullable().optional(),
});
export type CloseReason = z.infer<typeof CloseReason>;
