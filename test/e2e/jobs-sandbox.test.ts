import { execFileSync, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, chownSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { dirFor, useCleanups } from '../support/cleanups.js';
import { usePairedHost } from '../support/paired-host.js';
import { AGENT_BIN, hangarAgent, hangarFrom, startAgentProcess, type CliResult } from '../support/processes.js';
import { processesMatching as processes, processesRunning, uniqueSleep, until } from '../support/until.js';

const HAS_BWRAP = process.platform === 'linux' && existsSync('/usr/bin/bwrap');
/** CI runs as root, as agents on VPSes often do: the case where a sandbox must give root's powers up. */
const AS_ROOT = process.getuid?.() === 0;

/**
 * A route a job with CAP_NET_ADMIN could add: to a TEST-NET-3 address (RFC 5737), in a routing
 * table no rule looks up, so it would change no traffic while the test undoes it.
 */
const PROBE_ROUTE = ['blackhole', `203.0.113.${1 + (process.pid % 200)}/32`, 'table', '28461'];

/**
 * Sandbox jobs through the `hangar` CLI against a real agent process running as root. Each probe
 * prints `name=<exit status>`; a probe that succeeds today changes the host, so afterEach undoes it.
 */
describe.skipIf(!HAS_BWRAP || !AS_ROOT)('sandbox jobs on an agent that runs as root', () => {
  const probeName = `hangar-probe-${process.pid}`;
  // SIGINT: stop at once, cancelling what still runs (SIGTERM would give it the 30 s drain).
  const box = usePairedHost({
    name: 'local',
    workspace: { 'hello.txt': 'hello from the workspace\n' },
    stopSignal: 'SIGINT',
  });

  afterEach(() => {
    rmSync(`/usr/${probeName}`, { force: true });
    rmSync(`/etc/${probeName}`, { force: true });
    // Only if a probe got through: the route must not outlive the test.
    spawnSync('ip', ['route', 'del', ...PROBE_ROUTE], { stdio: 'ignore' });
  });

  const hangar = (args: string[], timeoutMs = 60_000): Promise<CliResult> =>
    hangarFrom(box.home, args, { cwd: box.workspace, timeoutMs });
  const sandboxed = (command: string, ...extra: string[]) =>
    hangar(['run', '--executor', 'sandbox', '-c', command, ...extra]);

  /** `name=status` lines of a probe's output. */
  const statuses = (output: string): Record<string, number> =>
    Object.fromEntries([...output.matchAll(/^(\w+)=(\d+)$/gm)].map((match) => [match[1]!, Number(match[2])]));

  it('a job has no capability and cannot remount /usr, write /usr or /etc, make a block device or change the host network', async () => {
    const probe = [
      'grep -E "^(CapEff|CapPrm|NoNewPrivs):" /proc/self/status',
      'mount -o remount,bind,rw /usr; echo remount=$?',
      `touch /usr/${probeName}; echo touch_usr=$?`,
      `touch /etc/${probeName}; echo touch_etc=$?`,
      'mknod /tmp/block b 8 0; echo mknod=$?',
      `ip route add ${PROBE_ROUTE.join(' ')}; echo route=$?`,
      'unshare --user --map-root-user true; echo userns=$?',
    ].join('\n');
    const result = await sandboxed(probe);
    const out = result.stdout;
    // On failure the whole probe output says what got through.
    expect(out, out).toMatch(/^CapEff:\s+0000000000000000$/m);
    expect(out, out).toMatch(/^CapPrm:\s+0000000000000000$/m);
    expect(out, out).toMatch(/^NoNewPrivs:\s+1$/m);
    const status = statuses(out);
    for (const name of ['remount', 'touch_usr', 'touch_etc', 'mknod', 'route', 'userns']) {
      expect(status[name], `${name} in:\n${out}`).toBeGreaterThan(0);
    }
    // Refused for want of privilege, not for a missing tool.
    expect(out).toMatch(/^mknod: .*Operation not permitted$/m);
    expect(out).toContain('RTNETLINK answers: Operation not permitted');
    expect(existsSync(`/usr/${probeName}`)).toBe(false);
    expect(existsSync(`/etc/${probeName}`)).toBe(false);
    expect(execFileSync('ip', ['route', 'show', 'table', 'all', PROBE_ROUTE[1]!], { encoding: 'utf8' })).toBe('');
  });

  it('a job runs as an unprivileged user on the host, and cancel still ends every process of it', async () => {
    const marker = uniqueSleep();
    const detached = await sandboxed(`touch /work/mine; (${marker}) & ${marker}`, '--detach');
    expect(detached.code).toBe(0);
    const id = detached.stdout.trim();
    // The sleeps themselves: the launcher's first steps run as root with the command in their argv.
    const sleeps = await until(() => {
      const found = processesRunning(marker);
      return found.length >= 2 ? found : undefined;
    }, 'both sleeps of the job');
    let jobUid = -1;
    for (const pid of sleeps) {
      // The host's view, from the host: real, effective, saved and file-system uid. A process seen
      // a moment ago that is gone now (a fork on its way to exec, once in CI) has nothing to read.
      let status: string;
      try {
        status = readFileSync(`/proc/${pid}/status`, 'utf8');
      } catch {
        continue;
      }
      const uids = /^Uid:\s+(.*)$/m.exec(status)![1]!.split(/\s+/).map(Number);
      expect(
        uids.every((uid) => uid !== 0),
        `uids ${uids.join(' ')}`,
      ).toBe(true);
      jobUid = uids[0]!;
    }
    expect(jobUid, 'no process of the job could be read').toBeGreaterThan(0);
    const owned = join(box.dataDir, 'jobs', id, '1', 'work', 'mine');
    await until(() => (existsSync(owned) ? true : undefined), 'the file the job made');
    expect(statSync(owned).uid).toBe(jobUid);
    const cancelled = await hangar(['cancel', id]);
    expect(cancelled).toMatchObject({ code: 0, stdout: `job ${id} on local is cancelled\n` });
    expect(processes(marker)).toEqual([]);
  });

  it('a job dies with its agent when the agent is killed, and shows as lost once it is back', async () => {
    const marker = uniqueSleep();
    const detached = await sandboxed(`(${marker}) & ${marker}`, '--detach');
    const id = detached.stdout.trim();
    await until(() => (processes(marker).length >= 2 ? true : undefined), 'both sleeps of the job');
    const port = box.agent.port;
    await box.agent.stop('SIGKILL');
    // --die-with-parent and the agent link's watchers, although bwrap runs as another user than the agent.
    await until(() => (processes(marker).length === 0 ? true : undefined), 'the job to die with its agent');
    box.agent = await startAgentProcess(box.dataDir, { port });
    const shown = await hangar(['jobs', 'show', id, '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id, state: 'lost' });
  });

  it('a job still builds: it writes /work and /tmp, runs sh and git, and its artifacts come back', async () => {
    const result = await sandboxed(
      [
        'set -e',
        'cat hello.txt',
        'echo scratch > /tmp/scratch && cat /tmp/scratch',
        'mkdir -p out && echo built > out/app.txt',
        'git init -q . && git add hello.txt',
        'git -c user.name=job -c user.email=job@example.com commit -qm first',
        'git log --format=%s',
      ].join('\n'),
      '--artifacts',
      'out/*',
    );
    expect(result.stderr).toMatch(/job j-[a-z0-9]+ succeeded/);
    expect(result).toMatchObject({ code: 0, stdout: 'hello from the workspace\nscratch\nfirst\n' });
    const id = /job (j-[a-z0-9]+)/.exec(result.stderr)![1]!;
    expect(readFileSync(join(box.workspace, 'hangar-artifacts', id, 'out', 'app.txt'), 'utf8')).toBe('built\n');
  });

  it('a job reaches no service on the host’s loopback by default (the core’s preview forwarders listen there); with --network host it does', async () => {
    const server = createServer((_request, response) => response.end('loopback service\n'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const probe = `curl -sS -m 5 ${url}; echo reached=$?`;
      const outbound = await sandboxed(probe);
      expect(outbound.code).toBe(0);
      expect(statuses(outbound.stdout)['reached']).not.toBe(0);
      expect(outbound.stdout).not.toContain('loopback service');
      const host = await sandboxed(probe, '--network', 'host');
      expect(statuses(host.stdout)['reached']).toBe(0);
      expect(host.stdout).toContain('loopback service');
    } finally {
      server.close();
    }
  });

  it('--pids caps the processes a job may start: the 100th sleep of a job limited to 64 cannot fork', async () => {
    const result = await sandboxed('for i in $(seq 1 100); do sleep 30 & done; echo started all', '--pids', '64');
    expect(result.code).not.toBe(0);
    expect(result.stdout).toMatch(/fork/i);
    expect(result.stdout).not.toContain('started all');
  });

  it('--memory caps what a job may allocate', async () => {
    const big = await sandboxed('dd if=/dev/zero of=/dev/null bs=400M count=1 2>&1', '--memory', '256M');
    expect(big.code).not.toBe(0);
    const small = await sandboxed(
      'dd if=/dev/zero of=/dev/null bs=32M count=1 2>/dev/null && echo fits',
      '--memory',
      '256M',
    );
    expect(small).toMatchObject({ code: 0, stdout: 'fits\n' });
  });

  it('a job given no limits still has a process and a memory limit, and is the OOM killer’s first pick', async () => {
    const result = await sandboxed('cat /proc/self/limits; echo oom_score_adj=$(cat /proc/self/oom_score_adj)');
    expect(result.code).toBe(0);
    const limit = (name: string) => new RegExp(`^${name}\\s+(\\S+)\\s+(\\S+)`, 'm').exec(result.stdout)?.slice(1);
    // soft and hard alike, so the job cannot raise them again
    const [processesSoft, processesHard] = limit('Max processes')!;
    expect(processesSoft).not.toBe('unlimited');
    expect(processesHard).toBe(processesSoft);
    const [memorySoft, memoryHard] = limit('Max address space')!;
    expect(memorySoft).not.toBe('unlimited');
    expect(memoryHard).toBe(memorySoft);
    expect(result.stdout).toMatch(/^oom_score_adj=1000$/m);
  });
});

describe.skipIf(!HAS_BWRAP || !AS_ROOT)('sandbox jobs where the kernel refuses user namespaces', () => {
  // One host (and stand-in bwrap) for both: a refused run starts nothing, and doctor only looks.
  const cleanups = useCleanups(afterAll);
  let bin: string;
  const box = usePairedHost({
    shared: true,
    name: 'local',
    workspace: { README: 'a workspace\n' },
    beforeStart: () => {
      bin = dirFor(cleanups, 'bin');
      // The job's unprivileged user must be able to run it.
      chmodSync(bin, 0o755);
      const standIn = join(bin, 'bwrap');
      writeFileSync(standIn, readFileSync(join(import.meta.dirname, '..', 'fixtures', 'bwrap-no-userns'), 'utf8'));
      chmodSync(standIn, 0o755);
      return { extraArgs: ['--bwrap', standIn] };
    },
  });

  it('hangar run --executor sandbox is refused with what to enable, and nothing runs', async () => {
    const marker = join(box.workspace, 'ran');
    const result = await hangarFrom(box.home, ['run', '--executor', 'sandbox', '-c', `touch ${marker}`], {
      cwd: box.workspace,
      timeoutMs: 60_000,
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('user namespaces');
    expect(result.stderr).toContain('kernel.unprivileged_userns_clone=1');
    expect(result.stderr).toContain('user.max_user_namespaces');
    expect(result.stderr).toContain('kernel.apparmor_restrict_unprivileged_userns=0');
    expect(existsSync(marker)).toBe(false);
  });

  it('hangar-agent doctor reports it, with the sysctl to change', async () => {
    const result = await hangarAgent(['doctor', '--data', box.dataDir, '--bwrap', join(bin, 'bwrap')]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^✗ bubblewrap sandbox: bubblewrap cannot create an unprivileged user namespace/m);
    expect(result.stdout).toContain('fix: allow unprivileged user namespaces');
  });
});

/** The user a non-root agent runs as here, and whether it can run the agent from this checkout. */
const AGENT_USER = { uid: 65534, gid: 65534 };
const USER_CAN_RUN_AGENT =
  AS_ROOT &&
  spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(AGENT_BIN)})`], AGENT_USER).status ===
    0;

describe.skipIf(!HAS_BWRAP || !USER_CAN_RUN_AGENT)('sandbox jobs on an agent that is not root', () => {
  const box = usePairedHost({
    name: 'local',
    workspace: { README: 'a workspace\n' },
    beforeStart: (dataDir) => {
      chownSync(dataDir, AGENT_USER.uid, AGENT_USER.gid);
      return { user: AGENT_USER };
    },
    stopSignal: 'SIGINT',
  });

  it('bwrap runs as the agent’s own user: still a user namespace with no capability and limits', async () => {
    const probe = [
      'grep -E "^(Uid|CapEff):" /proc/self/status',
      'mount -o remount,bind,rw /usr; echo remount=$?',
      'unshare --user --map-root-user true; echo userns=$?',
      'grep -E "^Max processes" /proc/self/limits',
      'touch /work/mine && stat -c owner=%u /work/mine',
    ].join('\n');
    const result = await hangarFrom(box.home, ['run', '--executor', 'sandbox', '-c', probe], {
      cwd: box.workspace,
      timeoutMs: 60_000,
    });
    const out = result.stdout;
    expect(out, `${out}${result.stderr}`).toMatch(/^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    expect(out, out).toMatch(/^CapEff:\s+0000000000000000$/m);
    expect(out, out).toMatch(/^remount=[1-9]\d*$/m);
    expect(out, out).toMatch(/^userns=[1-9]\d*$/m);
    expect(out, out).toMatch(/^Max processes\s+2048\s+2048\s/m);
    expect(out, out).toMatch(/^owner=65534$/m);
    expect(result.code).toBe(0);
  });
});
