import { ERROR_CODES, HangarError, toHangarError, type ErrorCode } from '@hangar/shared';
import { visibleText } from './output.js';

/**
 * Exit statuses of `hangar`, stable for scripts. `attach` exits with the session's own status
 * when its command ends.
 */
export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  notFound: 3,
  auth: 4,
  unreachable: 5,
  limit: 6,
} as const;

/** Refusals that waiting, upgrading or raising a setting would lift: a host's caps, the plan, a rate. */
const LIMITS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'E_SESSION_LIMIT',
  'E_TASK_LIMIT',
  'E_PLAN_LIMIT',
  'E_RATE_LIMITED',
]);

export function exitCodeFor(code: ErrorCode): number {
  if (code === 'E_BAD_REQUEST') return EXIT.usage;
  if (code.endsWith('_NOT_FOUND')) return EXIT.notFound;
  if (code.startsWith('E_AUTH_')) return EXIT.auth;
  if (code === 'E_HOST_UNREACHABLE' || code === 'E_UNAVAILABLE' || code === 'E_TIMEOUT') return EXIT.unreachable;
  if (LIMITS.has(code)) return EXIT.limit;
  return EXIT.error;
}

/** Prints `hangar: <message>` (which may quote host text: shown visibly) and returns the status to exit with. */
export function reportError(error: unknown): number {
  const failure = toHangarError(fromAnotherCopy(error) ?? error);
  process.stderr.write(`hangar: ${visibleText(failure.message)}\n`);
  if (process.env['HANGAR_DEBUG'] && failure.stack) process.stderr.write(`${failure.stack}\n`);
  return exitCodeFor(failure.code);
}

/**
 * The bundled hangar command carries its own copy of @hangar/shared; the core it falls back to
 * (and `hangar up`/`ui`) throws HangarErrors of the copy in node_modules. Same shape, same code:
 * the same error, whichever copy made it.
 */
function fromAnotherCopy(error: unknown): HangarError | undefined {
  if (error instanceof HangarError || !(error instanceof Error) || error.name !== 'HangarError') return undefined;
  const { code, details } = error as Error & { code?: unknown; details?: unknown };
  if (typeof code !== 'string' || !(ERROR_CODES as readonly string[]).includes(code)) return undefined;
  const copy = new HangarError(code as ErrorCode, error.message, details as Record<string, unknown> | undefined);
  copy.stack = error.stack;
  return copy;
}
