import type { z } from 'zod';
import { HangarError } from './errors.js';

/**
 * Parses `value` with `schema`; on failure throws E_BAD_REQUEST naming each bad field and
 * what was expected, e.g. `session.create: params.name: expected a string (got number)`.
 */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  // A scalar (a port, a label) has no path: `port: a port is 1-65535`, not `port: (root): …`.
  const problems = result.error.issues
    .slice(0, 5)
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${messageOf(issue)}` : messageOf(issue)));
  throw new HangarError('E_BAD_REQUEST', `${what}: ${problems.join('; ')}`, {
    issues: result.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
  });
}

/** A record's bad key says only "Invalid key in record"; what the key's own schema said is the useful part. */
function messageOf(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_key' && issue.issues[0]) return issue.issues[0].message;
  return issue.message;
}
