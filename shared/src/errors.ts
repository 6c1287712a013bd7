import type { ErrorShape } from './protocol/control.js';

/**
 * One error type for every component. Codes are stable (the CLI maps them to exit
 * statuses, the UI shows the message); messages say what happened and what to do.
 */
export const ERROR_CODES = [
  'E_BAD_REQUEST',
  'E_PROTOCOL',
  'E_NOT_FOUND',
  'E_EXISTS',
  'E_INTERNAL',
  // a file or database row on disk is not what Hangar wrote (see parseStored)
  'E_STORE_CORRUPT',
  'E_UNAVAILABLE',
  'E_TIMEOUT',
  // identity and pairing
  'E_AUTH_UNKNOWN_DEVICE',
  'E_AUTH_HOST_KEY_CHANGED',
  'E_AUTH_BAD_SIGNATURE',
  'E_AUTH_BAD_CODE',
  'E_AUTH_CODE_USED',
  'E_AUTH_CODE_EXPIRED',
  'E_AUTH_NO_CODE',
  'E_AUTH_RATE_LIMITED',
  // sessions
  'E_SESSION_LIMIT',
  'E_SESSION_NOT_FOUND',
  'E_SESSION_EXISTS',
  'E_SESSION_ENDED',
  'E_TMUX_MISSING',
  // jobs
  'E_JOB_NOT_FOUND',
  'E_JOB_STATE',
  'E_WORKSPACE_TOO_LARGE',
  'E_WORKSPACE_UNSAFE',
  'E_WORKSPACE_MISSING',
  'E_ARTIFACT_UNSAFE',
  'E_EXECUTOR_UNAVAILABLE',
  // agent tasks
  'E_TASK_NOT_FOUND',
  'E_TASK_UNFIT',
  'E_TASK_LIMIT',
  'E_TASK_STATE',
  // backups
  'E_BACKUP_NOT_SET',
  'E_BACKUP_UNAVAILABLE',
  'E_BACKUP_BUSY',
  'E_BACKUP_FAILED',
  // hosts (client side)
  'E_HOST_NOT_FOUND',
  'E_HOST_EXISTS',
  'E_HOST_UNREACHABLE',
  // relay: accounts, sessions, enrollment, signaling
  'E_RATE_LIMITED',
  'E_FORBIDDEN',
  'E_AUTH_REQUIRED',
  'E_AUTH_EXPIRED',
  'E_AUTH_BAD_CREDENTIALS',
  'E_AUTH_REFRESH_REUSED',
  'E_AUTH_DEVICE_REVOKED',
  'E_AUTH_OIDC',
  'E_TOKEN_INVALID',
  'E_TOKEN_USED',
  'E_TOKEN_EXPIRED',
  'E_HOST_OFFLINE',
  'E_HOST_OTHER_ACCOUNT',
  // billing
  'E_PLAN_LIMIT',
  'E_BILLING_OFF',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class HangarError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'HangarError';
    this.code = code;
    this.details = details;
  }

  toJSON(): ErrorShape {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  static from(shape: ErrorShape): HangarError {
    return new HangarError(shape.code, shape.message, shape.details);
  }
}

export function isHangarError(value: unknown): value is HangarError {
  return value instanceof HangarError;
}

/**
 * A stream or link that closed with an error reason (`{code, message}`), as a HangarError: its
 * code when it is one of ours, else E_PROTOCOL; `what` names the stream in the message.
 */
export function closeReasonError(reason: { code: string; message: string }, what?: string): HangarError {
  const known = (ERROR_CODES as readonly string[]).includes(reason.code);
  const code: ErrorCode = known ? (reason.code as ErrorCode) : 'E_PROTOCOL';
  return new HangarError(code, what === undefined ? reason.message : `${what}: ${reason.message}`);
}

/** Wraps anything thrown into a HangarError without losing the original message. */
export function toHangarError(value: unknown): HangarError {
  if (value instanceof HangarError) return value;
  const message = value instanceof Error ? value.message : String(value);
  return new HangarError('E_INTERNAL', message);
}
