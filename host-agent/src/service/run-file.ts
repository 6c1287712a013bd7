import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { jsonOrUndefined } from '@hangar/shared';

/**
 * What a running agent says about itself in `<data>/run/agent.json`, written once it listens. The
 * installer's health check reads it to know that the process answering is the version it just
 * started (a new pid, the new version), and `status` to show the real address.
 */
export const RunFileSchema = z.object({
  schema_version: z.literal(1),
  pid: z.number().int().positive(),
  version: z.string().min(1),
  address: z.string().min(1),
  started_at: z.number().int(),
});
export type RunFile = z.infer<typeof RunFileSchema>;

export const runFilePath = (dataDir: string) => join(dataDir, 'run', 'agent.json');

export function writeRunFile(dataDir: string, info: Omit<RunFile, 'schema_version'>): void {
  const file = runFilePath(dataDir);
  mkdirSync(join(dataDir, 'run'), { recursive: true, mode: 0o700 });
  writeFileSync(`${file}.tmp`, JSON.stringify({ schema_version: 1, ...info }) + '\n', { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** The run file, or undefined when there is none or it is not readable yet (half written, bad). */
export function readRunFile(dataDir: string): RunFile | undefined {
  const file = runFilePath(dataDir);
  if (!existsSync(file)) return undefined;
  // Renamed into place whole: text that is not JSON is a foreign file.
  const parsed = RunFileSchema.safeParse(jsonOrUndefined(readFileSync(file, 'utf8')));
  return parsed.success ? parsed.data : undefined;
}

/**
 * Whether a process with this pid runs (EPERM: it does, as another user). A zombie does not: an
 * agent that exited but was not reaped yet (a container's PID 1 may never reap) is gone for us.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return true; // macOS: no /proc, and launchd reaps its jobs
  // Field 3 of /proc/<pid>/stat, after the parenthesised command name, is the state.
  return readFileSync(stat, 'utf8').split(') ').at(-1)?.[0] !== 'Z';
}
