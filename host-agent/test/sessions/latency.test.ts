/**
 * A key and its echo pass the agent's tmux server (issue 16: a download beside a terminal must not
 * keep its echo waiting for a CPU), which reads and writes the attachment's pty itself (its tmux
 * client hands over its tty and sleeps): given the native relay's preferLatency, the sessions give
 * the server the 0.1 ms slice of a keystroke's path; a pane's program, the user's, keeps the
 * kernel's default. Read from /proc/<pid>/sched (Linux 6.12 on).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNativeLanes } from '@hangar/lane';
import { SessionCreateParams } from '@hangar/shared';
import { useTestHost, type TestHost } from './fixture.js';

let host: TestHost;
useTestHost((started) => (host = started));

const [major, minor] = release().split('.').map(Number);
const slicesPerThread = process.platform === 'linux' && (major! > 6 || (major === 6 && minor! >= 12));

const sliceOf = (pid: number) => Number(/^se\.slice\s*:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/sched`, 'utf8'))![1]);
const pidOf = async (format: string, target?: string) =>
  Number((await host.tmux('display-message', '-p', ...(target ? ['-t', target] : []), format)).trim());

describe('scheduling of the sessions’ tmux processes', () => {
  it.runIf(slicesPerThread)("the tmux server gets the echo's short slice, a pane's program does not", async () => {
    const lanes = loadNativeLanes();
    if ('unavailable' in lanes) throw new Error(lanes.unavailable);
    const given: number[] = [];
    const sessions = await host.start({
      preferLatency: (pid) => {
        given.push(pid);
        return lanes.preferLatency(pid);
      },
    });
    const sleeper = { command: ['sleep', '600'], cwd: host.dataDir };
    await sessions.create(SessionCreateParams.parse({ name: 'first', ...sleeper }));
    await sessions.list(); // as the agent does on every change: it finds the server's pid
    const server = await pidOf('#{pid}');
    expect(sliceOf(server)).toBe(100_000);

    const attachment = await sessions.attach('first', { cols: 80, rows: 24 });
    expect(given).toEqual([server]);

    // A pane started by the server since: the user's program, on the default slice.
    await sessions.create(SessionCreateParams.parse({ name: 'second', ...sleeper }));
    const pane = await pidOf('#{pane_pid}', '=hangar-second:');
    expect(sliceOf(pane)).toBeGreaterThan(100_000);
    await sessions.list();
    expect(given).toEqual([server]); // once per server
    attachment.detach();
  });
});

describe('the tmux server’s pid, as the sessions read it', () => {
  it("is the server's own, whatever a session's program writes into an option of its session", async () => {
    const given: number[] = [];
    const sessions = await host.start({
      preferLatency: (pid) => {
        given.push(pid);
        return undefined; // recorded only: nothing here changes a process's scheduling
      },
    });
    await sessions.create(SessionCreateParams.parse({ name: 'first', command: ['sleep', '600'], cwd: host.dataDir }));
    // A pane's program can reach the server ($TMUX): a session of its own, listed after ours, with
    // an option whose value holds a tab and another process's pid (here pid 1: init, which an agent
    // running as root could reschedule).
    await host.tmux('new-session', '-d', '-s', 'zzz', 'sleep 600');
    await host.tmux('set-option', '-t', 'zzz', '@hangar_agent', 'x\t1');
    const listed = await sessions.list();
    expect(listed.map((s) => s.name)).toEqual(['first']);
    expect(given).toEqual([await pidOf('#{pid}')]);
    // Nor does the next listing take the server for another one that replaced it (a loss).
    await sessions.list();
    expect(sessions.tmuxState().ok).toBe(true);
  });

  it.runIf(process.platform === 'linux')(
    'is given the short slice only while it is a tmux server of ours (a pid reused, a server that lies)',
    async () => {
      // Processes where the listing says the server is: what a pid reused between the listing and
      // the call finds, or what a server on our socket that is not tmux could name. One of ours
      // that is no tmux; as root, also one named tmux of another user (nobody).
      const others: ChildProcess[] = [spawn('sleep', ['600'], { stdio: 'ignore' })];
      const asRoot = process.getuid?.() === 0;
      const binDir = mkdtempSync(join(tmpdir(), 'hangar-latency-'));
      try {
        if (asRoot) {
          chmodSync(binDir, 0o755);
          copyFileSync('/bin/sleep', join(binDir, 'tmux'));
          others.push(spawn(join(binDir, 'tmux'), ['600'], { stdio: 'ignore', uid: 65534, gid: 65534 }));
        }
        await Promise.all(
          others.map((other) => new Promise((resolve, reject) => other.once('spawn', resolve).once('error', reject))),
        );
        // A tmux whose listings name the pid in this file instead of its server's, while it has one.
        const pidFile = join(host.dataDir, 'listed-pid');
        const fakeTmux = join(host.dataDir, 'tmux-naming-another-pid');
        writeFileSync(
          fakeTmux,
          '#!/bin/bash\nset -o pipefail\nlisted=$(cat "$(dirname "$0")/listed-pid" 2>/dev/null)\n' +
            'case " $* " in\n' +
            `  *" list-sessions "*) if [ -n "$listed" ]; then tmux "$@" | sed "s/^[0-9]*\\t/$listed\\t/"; else exec tmux "$@"; fi ;;\n` +
            '  *) exec tmux "$@" ;;\nesac\n',
        );
        chmodSync(fakeTmux, 0o755);
        const given: number[] = [];
        const sessions = await host.start({
          tmuxPath: fakeTmux,
          preferLatency: (pid) => {
            given.push(pid);
            return undefined;
          },
        });
        await sessions.create(
          SessionCreateParams.parse({ name: 'first', command: ['sleep', '600'], cwd: host.dataDir }),
        );
        const server = await pidOf('#{pid}');
        expect(given).toEqual([server]); // the check passes a real server, named as it is
        for (const other of others) {
          writeFileSync(pidFile, String(other.pid));
          await sessions.list();
        }
        expect(given).toEqual([server]);
      } finally {
        for (const other of others) other.kill('SIGKILL');
        rmSync(binDir, { recursive: true, force: true });
      }
    },
  );
});
