import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach } from 'vitest';
import { SandboxExecutor, type SandboxExecutorOptions } from '../../../src/jobs/executors/sandbox.js';
import type { ExecutionRequest, ExecutionResult } from '../../../src/jobs/executors/types.js';
import { executionRequest } from './execution-request.mjs';
import { fileOutput } from './output.js';

/** Sandbox executors on real bubblewrap, with temp dirs and executors that go away after each test. */

export const cleanups: (() => void | Promise<void>)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

export function tempDir(parent: string, prefix: string): string {
  const dir = mkdtempSync(join(parent, `hangar-${prefix}-`));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Harness {
  executor: SandboxExecutor;
  dataDir: string;
  run(command: string, extra?: Partial<ExecutionRequest>): Promise<{ result: ExecutionResult; output: string }>;
  request(command: string, extra?: Partial<ExecutionRequest>): { request: ExecutionRequest; output: () => string };
}

/** A data dir under /opt when we may write there: /opt is bound read-only, so hiding it takes a tmpfs. */
function fakeDataDir(): string {
  try {
    return tempDir('/opt', 'agent-data');
  } catch {
    return tempDir(tmpdir(), 'agent-data');
  }
}

export function harness(options: Partial<SandboxExecutorOptions> = {}): Harness {
  const dataDir = fakeDataDir();
  const executor = new SandboxExecutor({ dataDir, cgroupParent: null, ...options });
  cleanups.push(() => executor.dispose());
  const request = (command: string, extra: Partial<ExecutionRequest> = {}) => {
    const workdir = tempDir(tmpdir(), 'work');
    const log = fileOutput(tempDir(tmpdir(), 'log'));
    cleanups.push(log.close);
    return {
      request: executionRequest({ command, workdir, output: log.output, ...extra }),
      output: log.text,
    };
  };
  return {
    executor,
    dataDir,
    request,
    async run(command, extra) {
      const { request: req, output } = request(command, extra);
      const execution = await executor.start(req);
      const result = await execution.done;
      return { result, output: output() };
    },
  };
}

/**
 * A copy of the stand-in for a host whose kernel refuses unprivileged user namespaces (the real
 * bwrap, in a namespace where no further one may be made), where the job's user can run it.
 */
export function bwrapWithoutUserNamespaces(): string {
  const dir = tempDir(tmpdir(), 'bwrap');
  chmodSync(dir, 0o755);
  const path = join(dir, 'bwrap');
  copyFileSync(resolve(import.meta.dirname, '..', '..', '..', '..', 'test', 'fixtures', 'bwrap-no-userns'), path);
  chmodSync(path, 0o755);
  return path;
}
