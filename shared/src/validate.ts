import type { z } from 'zod';
import { HangarError } from './errors.js';

/**
 * Parses `value` with `schema`; on failure throws E_BAD_REQUEST naming each bad field and
 * what was expected, e.g. `session.create: params.name: expected a string (got number)`.
 */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.slice(0, 5).map((issue) => {
    const path = issue.path.length > 0 ? issue.path.join('.') : '(root)';
    return `${path}: ${issue.message}`;
  });
  throw new HangarError('E_BAD_REQUEST', `${what}: ${problems.join('; ')}`, {
    issues: result.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
  });
}
