import { toHangarError } from '../errors.js';
import { CloseReason } from '../protocol/control.js';

/** Close reasons travel as JSON; keep them inside the CloseReason schema the peer validates. */
const MAX_REASON_MESSAGE = 1024;

/** A close frame's reason as JSON, cut to what the peer's schema accepts. */
export function encodeReason(reason: CloseReason): string {
  const message =
    reason.message.length > MAX_REASON_MESSAGE ? `${reason.message.slice(0, MAX_REASON_MESSAGE - 1)}…` : reason.message;
  return JSON.stringify({ ...reason, code: reason.code.slice(0, 64), message });
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
  const parsed = CloseReason.safeParse(value);
  if (parsed.success) return parsed.data;
  return {
    code: 'E_PROTOCOL',
    message: `peer closed stream ${stream} with an invalid reason: ${parsed.error.issues[0]?.message ?? 'unknown'}`,
  };
}
