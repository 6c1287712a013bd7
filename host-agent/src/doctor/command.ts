import type { Command } from 'commander';
import { doctorPassed, formatDoctor, runDoctor } from './index.js';

/** Adds `hangar-agent doctor` to the agent's CLI (called from cli.ts). */
export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description(
      'check this host for the known traps (tmux, bubblewrap and user namespaces, restic, Tart, DHCP lease, disk, 2-VM limit)',
    )
    .option('--data <dir>', 'data directory of the agent')
    .option('--tart-image <image>', 'the base image the tart executor clones')
    .option('--bwrap <path>', 'the bubblewrap binary the agent is given (default: bwrap on PATH)')
    .option('--restic <path>', 'the restic binary the agent is given (default: restic on PATH)')
    .option('--json', 'print JSON')
    .action(async (options: { data?: string; tartImage?: string; bwrap?: string; restic?: string; json?: boolean }) => {
      const results = await runDoctor({
        ...(options.data ? { dataDir: options.data } : {}),
        ...(options.tartImage ? { tartImage: options.tartImage } : {}),
        ...(options.bwrap ? { bwrapPath: options.bwrap } : {}),
        ...(options.restic ? { resticPath: options.restic } : {}),
      });
      process.stdout.write((options.json ? JSON.stringify(results) : formatDoctor(results)) + '\n');
      process.exitCode = doctorPassed(results) ? 0 : 1;
    });
}
