import { toHangarError } from '../errors.js';
import type { CloseReason } from '../protocol/control.js';

/** Close reasons travel as JSON; keep them inside the CloseReason schema the peer validates. */
const MAX_REASON_MESSAGE = 1024;
const MAX_REASON_CODE = 64;

/** A close frame's reason as JSON, cut to what the peer's schema accepts. */
export function encodeReason(reason: CloseReason): string {
  const message =
    reason.message.length > MAX_REASON_MESSAGE ? `${reason.message.slice(0, MAX_REASON_MESSAGE - 1)}…` : reason.message;
  return JSON.stringify({ ...reason, code: reason.code.slice(0, MAX_REASON_CODE), message });
}

/** The peer's close reason; anything that does not parse becomes an E_PROTOCOL reason saying so. */
export function decodeReason(json: string, stream: number): CloseReason {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    return {
      code: 'E_PROTOCOL',
      message: `peer closed stream ${stream} with a reason that is not JSON: ${toHangarError(error).message}`,
    };
  }
  const problem = reasonProblem(value);
  if (problem === undefined) {
    const { code, message, exit_code } = value as CloseReason;
    return exit_code === undefined ? { code, message } : { code, message, exit_code };
  }
  return { code: 'E_PROTOCOL', message: `peer closed stream ${stream} with an invalid reason: ${problem}` };
}

/**
 * What makes `value` not a CloseReason (protocol/control.ts), or undefined. Checked by hand, not
 * with the schema: the mux is all a hangar command reaching a running core loads of the link code,
 * and zod alone costs it more start-up time than the rest (issue 18).
 * shared/test/close-reason.test.ts holds this to the schema's verdicts.
 */
export function reasonProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const { code, message, exit_code } = value as Record<string, unknown>;
  if (typeof code !== 'string') return 'code: not a string';
  if (code.length > MAX_REASON_CODE) return `code: longer than ${MAX_REASON_CODE}`;
  if (typeof message !== 'string') return 'message: not a string';
  if (message.length > MAX_REASON_MESSAGE) return `message: longer than ${MAX_REASON_MESSAGE}`;
  if (exit_code !== undefined && exit_code !== null && !Number.isSafeInteger(exit_code))
    return 'exit_code: not an integer';
  return undefined;
}
