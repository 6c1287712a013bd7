// `hangar-agent install / status / logs / uninstall`, run from the packed and npm-installed package
// as a user gets it. systemd cannot run as PID 1 here and launchd is macOS-only, so systemctl,
// loginctl, journalctl, launchctl, useradd and userdel are stand-ins (test/fixtures) that enforce
// those tools' command lines and run the services for real in cgroups; the unit files are checked
// by the real `systemd-analyze verify`, the plists by parsing them as launchd would.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as plist from 'plist';
import { beforeAll, describe, expect, it } from 'vitest';
import { packAgent } from '../../build/agent-package/pack.mjs';
import { npmEnv, readCalls, STANDIN_PATH } from '../support/agent-releases.mjs';
import { AGENT_BIN, hangar, pairWith, tempDir, tmuxSocket, type AgentProcess, freePort } from '../support/processes.js';
import { useInstallSandboxes, useInstallWork, type Sandbox } from '../support/install-sandbox.js';

const exec = promisify(execFile);

let bin: string;
const installer = useInstallWork('agent-install');
const sandbox = useInstallSandboxes(() => installer);

beforeAll(async () => {
  const tarball = await packAgent({ outDir: join(installer.work, 'pack') });
  // As a user installs it: npm install -g of the tarball (its native modules fetched or built here).
  await exec(
    'npm',
    ['install', '--global', '--prefix', join(installer.work, 'global'), tarball, '--registry', installer.registry.url],
    {
      env: npmEnv(installer.registry, installer.work),
      timeout: 240_000,
    },
  );
  bin = join(installer.work, 'global', 'bin', 'hangar-agent');
}, 300_000);

async function agent(box: Sandbox, args: string[], program = bin) {
  try {
    const { stdout, stderr } = await exec(program, args, { env: box.env, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failure.code ?? -1, stdout: failure.stdout ?? '', stderr: failure.stderr ?? String(error) };
  }
}

/** `hangar-agent install <mode> --listen 127.0.0.1:<a free port>` in a fresh sandbox; it must succeed quietly. */
async function installed(mode: '--system' | '--user') {
  const box = sandbox();
  const port = await freePort();
  const install = await agent(box, ['install', mode, '--listen', `127.0.0.1:${port}`]);
  expect(install.stderr).toBe('');
  expect(install.code).toBe(0);
  return { box, port, install };
}

function runFile(dataDir: string): { pid: number; version: string; address: string } {
  return JSON.parse(readFileSync(join(dataDir, 'run', 'agent.json'), 'utf8'));
}

/** Whether a process runs; a zombie does not (PID 1 here may be slow to reap what the stand-ins leave). */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false; // no /proc entry: gone
  }
}

async function verifyUnit(file: string, user: boolean) {
  const runtime = tempDir('xdg');
  try {
    return await exec('systemd-analyze', [...(user ? ['--user'] : []), 'verify', file], {
      env: { ...process.env, XDG_RUNTIME_DIR: runtime },
    }).then(
      ({ stderr }) => ({ code: 0, stderr }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
  } finally {
    rmSync(runtime, { recursive: true, force: true });
  }
}

describe('hangar-agent install', () => {
  it('npm installs the package as hangar-agent, bundled, with only its native modules as dependencies and the lanes relay built', async () => {
    const installed = join(installer.work, 'global', 'lib', 'node_modules', 'hangar-agent');
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
    expect(manifest).toMatchObject({
      name: 'hangar-agent',
      bin: { 'hangar-agent': 'bin/hangar-agent.js' },
      files: ['bin', 'dist', 'binding.gyp', 'src/native'],
      engines: { node: '>=20' },
    });
    expect(Object.keys(manifest.dependencies).sort()).toEqual(['better-sqlite3', 'node-datachannel', 'node-pty']);
    expect(existsSync(join(installed, 'node_modules', '@hangar'))).toBe(false);
    // The package's install script built the native relay of lanes where the bundle looks for it.
    expect(existsSync(join(installed, 'build', 'Release', 'lane.node'))).toBe(true);
    const help = await agent(sandbox(), ['--help']);
    expect(help.stdout).toMatch(/install \[options\][\s\S]*uninstall[\s\S]*status[\s\S]*logs[\s\S]*update/);
  });

  it('--dry-run prints the unit files in full and the commands it would run, and changes nothing', async () => {
    const box = sandbox();
    const result = await agent(box, ['install', '--system', '--dry-run']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('nothing was changed');
    expect(result.stdout).toMatch(
      /\| ExecStart=\S*node --max-semi-space-size=2 --memory-reducer-single-gc \S*\/opt\/hangar\/current\/bin\/hangar-agent\.js serve/,
    );
    expect(result.stdout).toContain('| KillMode=mixed');
    expect(result.stdout).toContain('| Delegate=yes');
    expect(result.stdout).toMatch(/run useradd --prefix \S+ --system .* hangar:/);
    expect(result.stdout).toContain('run systemctl daemon-reload');
    expect(result.stdout).toContain('run systemctl restart hangar-agent.service');
    expect(readdirSync(box.root)).toEqual([]);
    expect(readCalls(box.state)).toEqual([]);
  });

  it('--dry-run on macOS --system prints a LaunchDaemon that runs as the user, loaded into the system domain', async () => {
    const box = sandbox({ HANGAR_INSTALL_PLATFORM: 'darwin', SUDO_USER: 'mini' });
    const result = await agent(box, ['install', '--system', '--dry-run']);
    expect(result.code).toBe(0);
    const path = join(box.root, 'Library/LaunchDaemons/dev.hangar.agent.plist');
    expect(result.stdout).toContain(`write ${path}`);
    expect(result.stdout).toMatch(/\| +<key>UserName<\/key>\n +\| +<string>mini<\/string>/);
    expect(result.stdout).toContain(`run launchctl bootstrap system ${path}`);
    expect(readdirSync(box.root)).toEqual([]);
    expect(readCalls(box.state)).toEqual([]);
  });

  it('refuses a --token that is not a whole enrollment line before it looks at anything, and changes nothing', async () => {
    const box = sandbox();
    const result = await agent(box, ['install', '--user', '--token', 'hgr1_example']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('copy the whole line that `hangar hosts enroll-token` printed');
    expect(result.stdout).toBe('');
    expect(readdirSync(box.home)).toEqual([]);
    expect(readCalls(box.state)).toEqual([]);
  });

  it('says how to install a missing tmux, and changes nothing', async () => {
    const empty = join(installer.work, 'empty-bin');
    mkdirSync(empty, { recursive: true });
    const box = sandbox({ PATH: `${STANDIN_PATH}:${empty}` });
    // From the checkout: the machine is checked before anything else, so it need not be packed.
    const result = await exec(process.execPath, [AGENT_BIN, 'install', '--user'], { env: box.env }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result.code).toBe(1);
    // The package manager's own line (apt-get on Debian/Ubuntu, dnf, pacman, apk, zypper).
    expect(result.stderr).toMatch(
      /tmux ≥ 3\.2: tmux is not installed; sudo [\w-]+ (install|-S|add)( -y)? tmux \(3\.2 or newer\)/,
    );
    expect(result.stderr).toContain('nothing was changed');
    expect(readdirSync(box.home)).toEqual([]);
    expect(readCalls(box.state)).toEqual([]);
  });

  it('a system install makes the hangar users, writes units systemd-analyze verify accepts, and runs the agent', async () => {
    const { box, port, install } = await installed('--system');
    expect(install.stdout).toContain(`listening on 127.0.0.1:${port}`);
    expect(install.stdout).toContain('sudo -u hangar hangar-agent pair --data');

    const passwd = readFileSync(join(box.root, 'etc/passwd'), 'utf8');
    expect(passwd).toMatch(/^hangar:x:\d+:\d+::\/home\/hangar:\/bin\/(ba)?sh$/m);
    expect(passwd).toMatch(/^hangar-job:x:\d+:\d+::\/nonexistent:\/usr\/sbin\/nologin$/m);
    const data = join(box.root, 'var/lib/hangar');
    expect(statSync(data).mode & 0o777).toBe(0o700);
    expect(statSync(data).uid).toBe(Number(/^hangar:x:(\d+)/m.exec(passwd)![1]));

    for (const unit of ['hangar-agent.service', 'hangar-tmux.service']) {
      const verified = await verifyUnit(join(box.root, 'etc/systemd/system', unit), false);
      expect({ unit, ...verified }).toEqual({ unit, code: 0, stderr: '' });
    }
    const calls = readCalls(box.state).map((call) => call.join(' '));
    expect(calls.indexOf('systemctl daemon-reload')).toBeGreaterThanOrEqual(0);
    expect(calls.indexOf('systemctl daemon-reload')).toBeLessThan(calls.indexOf('systemctl start hangar-tmux.service'));
    expect(calls.some((call) => call.startsWith('systemctl-warning'))).toBe(false);

    const status = JSON.parse((await agent(box, ['status', '--system', '--json'])).stdout);
    expect(status.service.running).toBe(true);
    expect(status.version).toMatchObject({ current: '0.1.0', running: '0.1.0' });
    expect(status.relay).toEqual({ state: 'not_enrolled' });
    expect(status.devices).toEqual([]);

    const pid = runFile(data).pid;
    const uninstall = await agent(box, ['uninstall', '--system']);
    expect(uninstall.code).toBe(0);
    expect(uninstall.stdout).toContain(`Its data is kept in ${data}`);
    expect(alive(pid)).toBe(false);
    expect(existsSync(join(box.root, 'etc/systemd/system/hangar-agent.service'))).toBe(false);
    expect(existsSync(join(box.root, 'opt/hangar'))).toBe(false);
    expect(existsSync(join(data, 'agent.db'))).toBe(true);

    expect((await agent(box, ['install', '--system', '--listen', `127.0.0.1:${port}`])).code).toBe(0);
    const purge = await agent(box, ['uninstall', '--system', '--purge']);
    expect(purge.code).toBe(0);
    expect(existsSync(data)).toBe(false);
    expect(readFileSync(join(box.root, 'etc/passwd'), 'utf8')).not.toMatch(/^hangar/m);
  }, 240_000);

  it('a user install lingers, and its terminals outlive agent restarts in a tmux unit of their own', async () => {
    const { box, port, install } = await installed('--user');
    expect(JSON.parse(readFileSync(join(box.state, 'linger.json'), 'utf8'))).toEqual({ root: true });
    for (const unit of ['hangar-agent.service', 'hangar-tmux.service']) {
      const verified = await verifyUnit(join(box.home, '.config/systemd/user', unit), true);
      expect({ unit, ...verified }).toEqual({ unit, code: 0, stderr: '' });
    }

    // Paired and used as a user would: a code from the agent, `hangar hosts add`, a session over the link.
    const data = join(box.home, '.hangar-agent');
    const app = join(box.dir, 'app');
    await pairWith(app, 'svc', { dataDir: data, address: `127.0.0.1:${port}` } as AgentProcess);
    const created = await hangar(app, ['session', 'new', 'svc', '--name', 'keep', '--', 'sleep', '600']);
    expect(created.code).toBe(0);
    const socket = ['-L', tmuxSocket(data)];
    const panePid = (
      await exec('tmux', [...socket, 'display', '-p', '-t', '=hangar-keep', '#{pane_pid}'])
    ).stdout.trim();
    const serverPid = (await exec('tmux', [...socket, 'display', '-p', '#{pid}'])).stdout.trim();
    const before = runFile(data).pid;
    expect(readFileSync(`/proc/${serverPid}/cgroup`, 'utf8')).toMatch(/^0::.*\/user-hangar-tmux\.service$/m);
    expect(readFileSync(`/proc/${before}/cgroup`, 'utf8')).toMatch(/^0::.*\/user-hangar-agent\.service$/m);

    await exec('systemctl', ['--user', 'restart', 'hangar-agent.service'], { env: box.env });
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (!existsSync(join(data, 'run/agent.json')) || runFile(data).pid === before)) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(runFile(data).pid).not.toBe(before);
    expect(alive(before)).toBe(false);
    const after = (await exec('tmux', [...socket, 'display', '-p', '-t', '=hangar-keep', '#{pane_pid}'])).stdout.trim();
    expect(after).toBe(panePid);

    const listed = await hangar(app, ['session', 'ls', 'svc', '--json']);
    expect(listed.stdout).toContain('"keep"');
    const status = JSON.parse((await agent(box, ['status', '--json'])).stdout);
    expect(status.sessions).toBe(1);
    expect(status.devices).toHaveLength(1);
    const logs = await agent(box, ['logs', '--lines', '50']);
    expect(logs.stdout).toContain('"msg":"agent started"');

    expect((await agent(box, ['uninstall'])).code).toBe(0);
    expect(alive(Number(panePid))).toBe(false);
  }, 240_000);

  it('on macOS it installs a launchd agent whose plist launchd accepts, with logs under ~/Library/Logs/Hangar', async () => {
    const box = sandbox({ HANGAR_INSTALL_PLATFORM: 'darwin' });
    const port = await freePort();
    const install = await agent(box, ['install', '--listen', `127.0.0.1:${port}`]);
    expect(install.stderr).toBe('');
    expect(install.code).toBe(0);
    const file = join(box.home, 'Library/LaunchAgents/dev.hangar.agent.plist');
    const job = plist.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(job).toMatchObject({
      Label: 'dev.hangar.agent',
      RunAtLoad: true,
      KeepAlive: true,
      AbandonProcessGroup: true,
      StandardOutPath: join(box.home, 'Library/Logs/Hangar/agent.log'),
      EnvironmentVariables: { MALLOC_ARENA_MAX: '2' },
    });
    expect((job['ProgramArguments'] as string[]).slice(-5)).toEqual([
      'serve',
      '--data',
      join(box.home, '.hangar-agent'),
      '--listen',
      `127.0.0.1:${port}`,
    ]);
    const uid = process.getuid!();
    // `launchctl print` is the installer asking whether launchd gave up while the agent starts (a
    // slow start asks more often): not part of what it changes.
    const changes = readCalls(box.state).filter((call) => call[0] === 'launchctl' && call[1] !== 'print');
    expect(changes).toEqual([
      ['launchctl', 'bootout', `gui/${uid}/dev.hangar.agent`],
      ['launchctl', 'enable', `gui/${uid}/dev.hangar.agent`],
      ['launchctl', 'bootstrap', `gui/${uid}`, file],
    ]);
    expect(JSON.parse((await agent(box, ['status', '--json'])).stdout).service).toMatchObject({ state: 'running' });
    expect((await agent(box, ['logs', '--lines', '20'])).stdout).toContain('"msg":"agent started"');

    expect((await agent(box, ['uninstall'])).code).toBe(0);
    expect(existsSync(file)).toBe(false);
    expect(readCalls(box.state).at(-1)).toEqual(['launchctl', 'bootout', `gui/${uid}/dev.hangar.agent`]);
  }, 240_000);
});
