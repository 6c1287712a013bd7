import type { HostStats, TmuxServerState } from '@hangar/shared';
import { execFile } from 'node:child_process';
import { statfs } from 'node:fs/promises';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Is `binary` on PATH and answering `--version`? Checked once: installing a tool means restarting the agent. */
async function answers(binary: string): Promise<boolean> {
  // tmux answers -V, not --version; a non-zero exit still proves the binary is there.
  const args = binary === 'tmux' ? ['-V'] : ['--version'];
  return run(binary, args, { timeout: 3000 }).then(
    () => true,
    (error: NodeJS.ErrnoException) => error.code !== 'ENOENT',
  );
}

export interface StatsSources {
  dataDir: string;
  /** Lists the sessions (which also notices a tmux server that went away). */
  sessionCount(): Promise<number>;
  /** Read after sessionCount(): whether sessions were lost with their tmux server. */
  tmuxState(): TmuxServerState;
  runningJobs(): number;
}

/** The load the UI shows per host. Capabilities are probed once, at the first call. */
export function hostStatsProvider(sources: StatsSources): () => Promise<HostStats> {
  let capabilities: Promise<HostStats['capabilities']> | undefined;
  return async () => {
    capabilities ??= Promise.all([answers('tmux'), answers('tart'), answers('bwrap')]).then(
      ([tmux, tart, bubblewrap]) => ({ tmux, tart, bubblewrap }),
    );
    const disk = await statfs(sources.dataDir);
    const load = loadavg();
    return {
      load: [load[0] ?? 0, load[1] ?? 0, load[2] ?? 0],
      cpus: cpus().length || 1,
      mem_total: totalmem(),
      mem_free: freemem(),
      disk_total: disk.blocks * disk.bsize,
      disk_free: disk.bavail * disk.bsize,
      sessions: await sources.sessionCount(),
      running_jobs: sources.runningJobs(),
      capabilities: await capabilities,
      tmux: sources.tmuxState(),
    };
  };
}
