// The install line and updates, for real: build/install/install.sh installs hangar-agent from a
// loopback npm registry (test/fixtures/npm-registry) into a temp HOME, `hangar-agent update` goes
// to a newer release and then to a deliberately broken one, which must be rolled back by itself;
// a tmux session started before the first update must survive all of it. systemd is stood in for
// by test/fixtures/systemd (it runs the units for real, in cgroups, with KillMode honoured).
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { killEverything } from '../fixtures/service-manager/jobs.mjs';
import { INSTALL_SH, installEnv, publishAgent } from '../support/agent-releases.mjs';
import { hangar, hangarAgent, tmuxSocket, freePort } from '../support/processes.js';
import { useInstallWork } from '../support/install-sandbox.js';

const exec = promisify(execFile);

const installer = useInstallWork('agent-update');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(program: string, args: string[], env: NodeJS.ProcessEnv, timeout = 180_000): Promise<Run> {
  return exec(program, args, { env, timeout }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({
      code: error.code ?? -1,
      stdout: error.stdout ?? '',
      stderr: error.stderr ?? String(error),
    }),
  );
}

/** A bin dir holding only these programs (links to this machine's), for a PATH without Node. */
function binWith(dir: string, programs: string[]): string {
  mkdirSync(dir, { recursive: true });
  for (const program of programs) {
    const found = ['/usr/bin', '/bin'].map((base) => join(base, program)).find((path) => existsSync(path));
    if (found) symlinkSync(found, join(dir, program));
  }
  return dir;
}

const SCRIPT_TOOLS = ['sh', 'uname', 'id', 'sed', 'systemctl'];

describe('install.sh', () => {
  it('refuses clearly where Node is missing, and installs nothing', async () => {
    const home = join(installer.work, 'no-node');
    mkdirSync(home, { recursive: true });
    const path = binWith(join(installer.work, 'bin-no-node'), SCRIPT_TOOLS);
    const result = await run('/bin/sh', [INSTALL_SH, '--token', 'hgr1_example'], { PATH: path, HOME: home });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Node.js 20 or newer is needed and was not found on PATH');
    expect(result.stderr).toContain('nodejs.org');
    expect(readdirSync(home)).toEqual([]);
  });

  it('piped into sh and cut short, runs nothing', async () => {
    const dir = join(installer.work, 'cut-short');
    const path = binWith(join(dir, 'bin'), [...SCRIPT_TOOLS, 'node']);
    // An npm that only says it ran: a half-downloaded script must never get this far.
    writeFileSync(join(path, 'npm'), `#!/bin/sh\necho ran >> ${join(dir, 'npm-ran')}\n`, { mode: 0o755 });
    const script = readFileSync(INSTALL_SH, 'utf8');
    const cut = script.slice(0, script.indexOf('# 3. The service.'));
    const result = await new Promise<Run>((resolve) => {
      const child = execFile(
        '/bin/sh',
        ['-s', '--', '--user'],
        { env: { PATH: path, HOME: dir } },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
      );
      child.stdin!.end(cut);
    });
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(existsSync(join(dir, 'npm-ran'))).toBe(false);
  });

  it('refuses an unsupported system by name', async () => {
    const path = binWith(
      join(installer.work, 'bin-bsd'),
      SCRIPT_TOOLS.filter((tool) => tool !== 'uname'),
    );
    writeFileSync(join(path, 'uname'), '#!/bin/sh\necho FreeBSD\n', { mode: 0o755 });
    const result = await run('/bin/sh', [INSTALL_SH], { PATH: path, HOME: installer.work });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('unsupported system: FreeBSD');
  });
});

describe('hangar-agent update', () => {
  it.each(['0', 'abc', '1.5', '3601', '-5'])(
    '--health-timeout %s is refused, naming the option and what it takes, before anything is looked at',
    async (value) => {
      const refused = await hangarAgent(['update', '--health-timeout', value]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(
        `--health-timeout: expected a whole number of seconds from 1 to 3600, not "${value}"`,
      );
      // Refused before it looks for an install (there is none here) or asks the registry.
      expect(refused.stderr).not.toContain('no hangar-agent service is installed');
      expect(refused.stdout).toBe('');
    },
  );

  it('installs with install.sh, updates with the terminals kept, and rolls a broken release back by itself', async () => {
    const dir = join(installer.work, 'flow');
    const box = { home: join(dir, 'home'), root: join(dir, 'root'), state: join(dir, 'state') };
    mkdirSync(box.home, { recursive: true });
    mkdirSync(box.root, { recursive: true });
    const env = installEnv({ registry: installer.registry, dir, ...box });
    const data = join(box.home, '.hangar-agent');
    const versions = join(box.home, '.local/share/hangar-agent');
    const bin = join(box.home, '.local/bin/hangar-agent');
    const runFile = () =>
      JSON.parse(readFileSync(join(data, 'run/agent.json'), 'utf8')) as { pid: number; version: string };
    try {
      await publishAgent(installer.registry, dir, '0.1.0');
      const port = await freePort();
      const install = await run(
        '/bin/sh',
        [
          INSTALL_SH,
          '--user',
          '--version',
          '0.1.0',
          '--registry',
          installer.registry.url,
          '--listen',
          `127.0.0.1:${port}`,
        ],
        env,
      );
      expect(install.stderr).not.toMatch(/error/i);
      expect(install.code).toBe(0);
      expect(install.stdout).toContain('It will:');
      expect(install.stdout).toContain(`hangar-agent 0.1.0 is running`);
      expect(runFile().version).toBe('0.1.0');

      // A computer paired with the installed agent: its host list says when an update is available.
      const device = join(dir, 'device');
      const code = JSON.parse((await run(bin, ['pair', '--data', data, '--json'], env)).stdout) as { code: string };
      const added = await hangar(device, ['hosts', 'add', 'svc', `127.0.0.1:${port}`, '--code', code.code]);
      expect(added.stderr).toBe('');
      const checked = await updateSeen(device, (update) => update?.checked_at != null);
      expect(checked).toMatchObject({ channel: 'stable', current: '0.1.0', latest: '0.1.0', available: false });

      const socket = ['-L', tmuxSocket(data)];
      await exec('tmux', [...socket, 'new-session', '-d', '-s', 'hangar-keep', 'sleep 900']);
      const pane = async () =>
        (await exec('tmux', [...socket, 'display', '-p', '-t', '=hangar-keep', '#{pane_pid}'])).stdout.trim();
      const panePid = await pane();

      await publishAgent(installer.registry, dir, '0.2.0');
      const update = await run(bin, ['update'], env);
      expect(update.stderr).toBe('');
      expect(update.code).toBe(0);
      expect(update.stdout).toMatch(/hangar-agent 0\.2\.0 answers \(pid \d+\) after \d+ ms/);
      expect(readlinkSync(join(versions, 'current'))).toBe(join('versions', '0.2.0'));
      expect(runFile().version).toBe('0.2.0');
      expect(await pane()).toBe(panePid);

      // Installing again (to change the address, say) with the 0.1.0 command keeps 0.2.0.
      const again = await run(
        bin,
        ['install', '--user', '--listen', `127.0.0.1:${port}`, '--registry', installer.registry.url],
        env,
      );
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('hangar-agent 0.2.0 is installed (this command is 0.1.0); keeping 0.2.0');
      expect(runFile().version).toBe('0.2.0');
      expect(await pane()).toBe(panePid);

      await publishAgent(installer.registry, dir, '0.3.0', { broken: true });
      const broken = await run(bin, ['update'], env);
      expect(broken.code).toBe(1);
      expect(broken.stderr).toContain('the update to 0.3.0 failed');
      expect(broken.stderr).toContain('rolled back to 0.2.0, which answers again');
      expect(readlinkSync(join(versions, 'current'))).toBe(join('versions', '0.2.0'));
      expect(readlinkSync(join(versions, 'previous'))).toBe(join('versions', '0.1.0'));
      expect(readdirSync(join(versions, 'versions')).sort()).toEqual(['0.1.0', '0.2.0']);
      expect(runFile().version).toBe('0.2.0');
      expect(await pane()).toBe(panePid);
      // The 0.2.0 that came back asked the registry at its start: 0.3.0 is the channel's version now.
      const seen = await updateSeen(device, (update) => update?.latest === '0.3.0');
      expect(seen).toMatchObject({ current: '0.2.0', latest: '0.3.0', available: true, error: null });
      const listed = await hangar(device, ['hosts', 'ls']);
      expect(listed.stdout).toContain(
        'svc: hangar-agent 0.3.0 is available (stable; it runs 0.2.0); on that host run: hangar-agent update',
      );

      const back = await run(bin, ['update', '--rollback'], env);
      expect(back.code).toBe(0);
      expect(runFile().version).toBe('0.1.0');
      expect(await pane()).toBe(panePid);
      const status = JSON.parse((await run(bin, ['status', '--json'], env)).stdout);
      expect(status.version).toMatchObject({ current: '0.1.0', previous: '0.2.0', running: '0.1.0' });
      expect(status.sessions).toBe(1);
    } finally {
      await killEverything(box.state);
      if (existsSync(data)) {
        await exec('tmux', ['-L', tmuxSocket(data), 'kill-server']).catch(() => undefined); // already gone
        rmSync(join(`/tmp/tmux-${process.getuid!()}`, tmuxSocket(data)), { force: true }); // a killed server leaves it
      }
    }
  }, 300_000);
});

interface UpdateView {
  channel: string;
  current: string;
  latest: string | null;
  available: boolean;
  checked_at: number | null;
  error: string | null;
}

/** Asks `hangar hosts ls` until the host's update info satisfies `done` (the agent checks at its start). */
async function updateSeen(home: string, done: (update: UpdateView | null) => boolean): Promise<UpdateView | null> {
  const deadline = Date.now() + 60_000;
  let last: UpdateView | null = null;
  while (Date.now() < deadline) {
    const listed = await hangar(home, ['hosts', 'ls', '--json']);
    const host = (JSON.parse(listed.stdout || '[]') as { name: string; update: UpdateView | null }[]).find(
      (h) => h.name === 'svc',
    );
    last = host?.update ?? null;
    if (done(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`the host's update info never got there; last seen: ${JSON.stringify(last)}`);
}
