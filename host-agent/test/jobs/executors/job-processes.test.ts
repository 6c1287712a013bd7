import { describe, expect, it } from 'vitest';
import { parsePsRows, selectJobProcesses } from '../../../src/jobs/executors/job-processes.js';

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
