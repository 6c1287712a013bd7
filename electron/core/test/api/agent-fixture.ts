import { afterEach } from 'vitest';
import { z } from 'zod';
import * as processes from '../../../../test/support/processes.js';

type AgentProcess = processes.AgentProcess;

/** What a test started, undone in reverse order after each test. */
export type Cleanup = (() => Promise<unknown> | unknown)[];

export function cleanupAfterEach(): Cleanup {
  const cleanup: Cleanup = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });
  return cleanup;
}

/** A real agent process on a data dir of its own; it, its tmux server and the dir go with `cleanup`. */
export async function startTestAgent(cleanup: Cleanup, prefix: string): Promise<AgentProcess> {
  const dataDir = processes.tempDir(prefix);
  cleanup.push(() => processes.removeDir(dataDir));
  cleanup.push(() => processes.killTmuxServer(dataDir));
  const agent = await processes.startAgentProcess(dataDir);
  cleanup.push(() => agent.stop());
  return agent;
}

/** An empty directory (a $HANGAR_HOME), removed with `cleanup`. */
export function tempHome(cleanup: Cleanup, prefix: string): string {
  const home = processes.tempDir(prefix);
  cleanup.push(() => processes.removeDir(home));
  return home;
}

/** A fresh pairing code, as the host's owner gets one: hangar-agent pair --json. */
export async function pairingCode(agent: AgentProcess): Promise<string> {
  const issued = await processes.hangarAgent(['pair', '--data', agent.dataDir, '--json']);
  return z.object({ code: z.string() }).parse(JSON.parse(issued.stdout)).code;
}
