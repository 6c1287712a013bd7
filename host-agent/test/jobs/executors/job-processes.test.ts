import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  attemptMarks,
  jobProcesses,
  parsePsRows,
  selectJobProcesses,
} from '../../../src/jobs/executors/job-processes.js';
import { killQuietly } from '../../../../test/support/until.js';

/**
 * The platform-neutral half of finding a shell attempt's processes: what macOS's `ps -E` shows
 * (environment after the command line), and the walk from group and marks down to descendants.
 * Linux's /proc half runs in the e2e and recovery tests.
 */
describe('finding a shell attempt’s processes', () => {
  const job = { id: 'j-0123abcd', attempt: 2 };
  const table = [
    // the agent: its own environment, no marks
    '  100     1   100 Ss   node hangar-agent serve HOME=/Users/me',
    // the job's shell leads group 200; 201 is in it
    '  200   100   200 S    /bin/sh -c make HOME=/Users/me HANGAR_JOB_ID=j-0123abcd HANGAR_ATTEMPT=2',
    '  201   200   200 S    make HANGAR_ATTEMPT=2 HOME=/Users/me HANGAR_JOB_ID=j-0123abcd',
    // setsid, then a double fork: reparented to launchd, a group of its own, the marks kept
    '  300     1   300 Ss   sleep 600 HANGAR_JOB_ID=j-0123abcd HANGAR_ATTEMPT=2',
    // its child that dropped the marks (env -i) is still found through its parent
    '  301   300   300 S    sleep 601 PATH=/usr/bin',
    // the same job's first attempt, and another job: not this attempt's
    '  400     1   400 S    sleep 602 HANGAR_JOB_ID=j-0123abcd HANGAR_ATTEMPT=1',
    '  401     1   401 S    sleep 603 HANGAR_JOB_ID=j-0123abcd0 HANGAR_ATTEMPT=2',
    // the marks in a command line's arguments are not an environment of two variables
    '  402     1   402 S    grep HANGAR_JOB_ID=j-0123abcdHANGAR_ATTEMPT=2',
    // a zombie holds nothing and cannot be killed again
    '  500     1   500 Z    (sleep)',
    '',
  ].join('\n');

  it('finds the group, what carries the marks, and their descendants; nothing else', () => {
    const rows = parsePsRows(table, { job });
    expect(rows).toHaveLength(9);
    expect(selectJobProcesses(rows, 200).sort()).toEqual([200, 201, 300, 301]);
  });

  it('without a group (its leader’s pid went to a stranger) it finds what carries the marks, not the stranger', () => {
    const stranger = table
      .split('\n')
      .map((line) => (/^ {2}20[01] /.test(line) ? line.replace(/ HANGAR_\S+/g, '') : line))
      .join('\n');
    const rows = parsePsRows(stranger, { job });
    expect(selectJobProcesses(rows, undefined).sort()).toEqual([300, 301]);
  });

  it('without marks (a checkpoint from before they were recorded) it finds only the group', () => {
    expect(selectJobProcesses(parsePsRows(table, { job: undefined }), 200).sort()).toEqual([200, 201]);
  });
});

describe.runIf(process.platform === 'linux')('finding an attempt’s processes in /proc', () => {
  const job = { id: 'j-race0001', attempt: 1 };

  /** A child's first line of output. */
  const firstLine = (child: ChildProcess) =>
    new Promise<string>((resolve, reject) => {
      let text = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes('\n')) resolve(text.slice(0, text.indexOf('\n')));
      });
      child.once('exit', () => reject(new Error('exited before its first line')));
    });

  /** Blocks the event loop (as a scan's slice does) until `done` holds, at most 5 s. */
  const blockUntil = (done: () => boolean) => {
    const cell = new Int32Array(new SharedArrayBuffer(4));
    for (let waited = 0; !done() && waited < 5000; waited += 5) Atomics.wait(cell, 0, 0, 5);
  };

  it('finds what a process that ended during the scan forked after /proc was listed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-scan-'));
    const forkedFile = join(dir, 'forked');
    // Other processes listed before the parent's pid, unmarked: the scan's first slice ends
    // before it reaches the parent (each is read, stat and environment).
    const others = spawn('bash', ['-c', 'for i in $(seq 400); do sleep 600 & done; echo ready; wait'], {
      detached: true,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const children: ChildProcess[] = [others];
    let forked: number | undefined;
    try {
      await firstLine(others);
      // One of the attempt's: on SIGUSR1 it forks a child (the marks inherited) and exits, as a
      // daemon's double fork does.
      const parent = spawn(
        'bash',
        ['-c', `trap 'sleep 600 & echo $! > ${forkedFile}; exit 0' USR1; echo ready; while :; do sleep 0.01; done`],
        { env: { ...process.env, ...attemptMarks(job) }, stdio: ['ignore', 'pipe', 'ignore'] },
      );
      children.push(parent);
      await firstLine(parent);
      const scan = jobProcesses({ pgid: undefined, job });
      // The scan listed /proc and is between two slices: the parent forks and ends now.
      parent.kill('SIGUSR1');
      const state = () => readFileSync(`/proc/${parent.pid}/stat`, 'latin1').split(') ')[1]?.[0];
      blockUntil(() => existsSync(forkedFile) && readFileSync(forkedFile, 'utf8').endsWith('\n') && state() === 'Z');
      forked = Number(readFileSync(forkedFile, 'utf8'));
      expect(forked).toBeGreaterThan(0);
      expect(await scan).toContain(forked);
    } finally {
      if (forked) killQuietly(forked);
      killQuietly(-others.pid!);
      for (const child of children) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
