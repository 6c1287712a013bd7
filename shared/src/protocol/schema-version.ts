/**
 * Bumped when a control message changes incompatibly; every message carries it. Alone in its
 * module so that code needing only the number (a hangar command's client of a running core) does
 * not load zod with the schemas of control.ts.
 */
export const SCHEMA_VERSION = 1 as const;
