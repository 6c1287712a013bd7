import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { JobOutput } from '../../../src/jobs/executors/types.js';

/** A job's output as the agent gives it to an executor: a log file opened for appending. */
export function fileOutput(dir: string): { output: JobOutput; text: () => string; close: () => void } {
  const path = join(dir, 'log');
  const fd = openSync(path, 'a', 0o600);
  return {
    output: { fd, write: (chunk) => void writeSync(fd, chunk) },
    text: () => readFileSync(path, 'utf8'),
    close: () => closeSync(fd),
  };
}
