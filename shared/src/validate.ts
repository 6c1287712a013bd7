import { z } from 'zod';
import { HangarError } from './errors.js';

/**
 * Parses `value` with `schema`; on failure throws E_BAD_REQUEST naming each bad field and
 * what was expected, e.g. `session.create: params.name: expected a string (got number)`.
 */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new HangarError('E_BAD_REQUEST', `${what}: ${problemsOf(result.error)}`, { issues: issuesOf(result.error) });
}

/** The first few bad fields, each with what was expected. */
function problemsOf(error: z.ZodError): string {
  // A scalar (a port, a label) has no path: `port: a port is 1-65535`, not `port: (root): …`.
  return error.issues
    .slice(0, 5)
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${messageOf(issue)}` : messageOf(issue)))
    .join('; ');
}

function issuesOf(error: z.ZodError): { path: string[]; message: string }[] {
  return error.issues.map((i) => ({ path: i.path.map(String), message: i.message }));
}

/** A record's bad key says only "Invalid key in record"; what the key's own schema said is the useful part. */
function messageOf(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_key' && issue.issues[0]) return issue.issues[0].message;
  return issue.message;
}

/** Where a stored value was read from, and what its owner can do when it is not what was written. */
export interface StoredPlace {
  /** The file (a database, a JSON file) it was read from. */
  file: string;
  /** What was read: `row of relay_enrollment`, `version`. */
  what: string;
  /** What to do: restore the file, move it aside, run a command. */
  remedy: string;
  /** The record's own name (a host's), in the error's details for the code that can remove it. */
  record?: string;
}

/**
 * Parses what was read back from disk (a database row, a file) with `schema`, as what came off
 * the wire is: a value that is not what Hangar wrote (a hand edit, a half-restored backup, a
 * newer version's file) throws E_STORE_CORRUPT naming the file, what was read, each bad field and
 * what to do, instead of a TypeError deep in the code that trusted it.
 */
export function parseStored<S extends z.ZodType>(schema: S, value: unknown, place: StoredPlace): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = problemsOf(result.error);
  throw new HangarError(
    'E_STORE_CORRUPT',
    `${place.file}: ${place.what} is not what Hangar wrote (${problems}); ${place.remedy}`,
    {
      file: place.file,
      ...(place.record === undefined ? {} : { record: place.record }),
      issues: issuesOf(result.error),
    },
  );
}

/** parseStored for JSON text (a file, a JSON column): text that is not JSON is reported the same way. */
export function parseStoredJson<S extends z.ZodType>(schema: S, text: string, place: StoredPlace): z.output<S> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new HangarError(
      'E_STORE_CORRUPT',
      `${place.file}: ${place.what} is not JSON (${(error as Error).message}); ${place.remedy}`,
      { file: place.file },
    );
  }
  return parseStored(schema, value, place);
}

/** `text` as JSON, or undefined when it is not JSON (the caller's schema then reports it, or passes it over). */
export function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}

const STORED_TEXT = z.string();

/** Reading one kind of database (agent.db, hangar.db): each row parsed as read, see parseStored. */
export interface StoredRowReader {
  /** One row of `table` (undefined: there is none). */
  row<S extends z.ZodType>(db: { name: string }, table: string, schema: S, row: unknown): z.output<S> | undefined;
  /** Rows of `table`. */
  rows<S extends z.ZodType>(db: { name: string }, table: string, schema: S, rows: unknown[]): z.output<S>[];
  /** A JSON column of `table` (its text checked as a string first). */
  json<S extends z.ZodType>(db: { name: string }, table: string, schema: S, text: unknown): z.output<S>;
}

/** A StoredRowReader whose errors end with `remedy`: what the owner of such a database can do. */
export function storedRowReader(remedy: string): StoredRowReader {
  const place = (db: { name: string }, table: string): StoredPlace => ({
    file: db.name,
    what: `a row of ${table}`,
    remedy,
  });
  return {
    row: (db, table, schema, row) => (row === undefined ? undefined : parseStored(schema, row, place(db, table))),
    rows: (db, table, schema, rows) => rows.map((row) => parseStored(schema, row, place(db, table))),
    json: (db, table, schema, text) => {
      const where = place(db, table);
      return parseStoredJson(schema, parseStored(STORED_TEXT, text, where), where);
    },
  };
}
