import { describe, expect, it } from 'vitest';
import { decodeReason, reasonProblem } from '../src/link/close-reason.js';
import { CloseReason } from '../src/protocol/control.js';

// The mux checks a peer's close reason by hand (no zod on a hangar command's fast path, issue 18):
// it must accept and refuse exactly what the CloseReason schema does, and keep what it keeps.
const CASES: unknown[] = [
  { code: 'closed', message: 'bye' },
  { code: 'ended', message: '', exit_code: 0 },
  { code: 'ended', message: 'x', exit_code: null },
  { code: 'ended', message: 'x', exit_code: -3, extra: 'dropped' },
  { code: 'c'.repeat(64), message: 'm'.repeat(1024) },
  { code: 'c'.repeat(65), message: 'm' },
  { code: 'c', message: 'm'.repeat(1025) },
  { code: 'c', message: 'm', exit_code: 1.5 },
  { code: 'c', message: 'm', exit_code: '1' },
  { code: 'c', message: 'm', exit_code: Number.MAX_SAFE_INTEGER + 2 },
  { code: 1, message: 'm' },
  { code: 'c' },
  { message: 'm' },
  null,
  [],
  'closed',
  42,
];

describe('close reasons checked without the schema', () => {
  it.each(CASES.map((value) => [JSON.stringify(value), value]))('agrees with CloseReason on %s', (_, value) => {
    const parsed = CloseReason.safeParse(value);
    expect(reasonProblem(value) === undefined).toBe(parsed.success);
    const decoded = decodeReason(JSON.stringify(value), 5);
    if (parsed.success) expect(decoded).toEqual(parsed.data);
    else {
      expect(decoded.code).toBe('E_PROTOCOL');
      expect(decoded.message).toContain(`peer closed stream 5 with an invalid reason: ${reasonProblem(value)}`);
    }
  });

  it('a reason that is not JSON is a protocol error naming the stream', () => {
    expect(decodeReason('{', 7)).toMatchObject({
      code: 'E_PROTOCOL',
      message: expect.stringContaining('stream 7 with a reason that is not JSON'),
    });
  });
});
