import { afterAll, afterEach } from 'vitest';
import { removeDir, tempDir } from './processes.js';

/** What a test started, undone last first when it ends. */
export type Cleanups = (() => unknown)[];

/**
 * A list to push a test's cleanups on; an afterEach of the calling scope runs them, last first
 * (`after: afterAll` for what the tests of a describe share).
 */
export function useCleanups(after: typeof afterEach | typeof afterAll = afterEach): Cleanups {
  const cleanups: Cleanups = [];
  after(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });
  return cleanups;
}

/** A fresh temp dir, removed with the test's cleanups. */
export function dirFor(cleanups: Cleanups, prefix: string): string {
  const made = tempDir(prefix);
  cleanups.push(() => removeDir(made));
  return made;
}
