import { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { registerDoctor } from '../src/doctor/command.js';
import { formatDoctor, runDoctor } from '../src/doctor/index.js';
import type { CommandRunner } from '../src/doctor/checks.js';
import { findJobUser } from '../src/jobs/executors/sandbox-user.js';
import { bwrapWithoutUserNamespaces } from './jobs/executors/sandbox-harness.js';

/** A fake macOS host: each tool answers as given, anything else is "not installed". */
function fakeHost(answers: Record<string, { code?: number; stdout?: string; stderr?: string }>): CommandRunner {
  return async (file, args) => {
    const answer = answers[`${file} ${args.join(' ')}`] ?? answers[file];
    if (!answer) return { code: -1, stdout: '', stderr: `spawn ${file} ENOENT` };
    return { code: answer.code ?? 0, stdout: answer.stdout ?? '', stderr: answer.stderr ?? '' };
  };
}

describe('hangar-agent doctor', () => {
  it('on this Linux host, tmux and bubblewrap pass and the macOS checks are skipped with a note', async () => {
    const results = await runDoctor({ platform: 'linux' });
    const byName = Object.fromEntries(results.map((result) => [result.name, result]));
    expect(byName['tmux ≥ 3.2']!.status).toBe('ok');
    expect(byName['bubblewrap sandbox']!.status).toBe('ok');
    expect(byName['Tart (macOS VMs)']!.status).toBe('skip');
    const output = formatDoctor(results);
    expect(output.split('\n')[0]).toMatch(/^✓ tmux ≥ 3\.2: tmux 3\.\d/);
    expect(output).toMatch(/^- Tart \(macOS VMs\): macOS only/m);
  });

  it('restic: this host has it; a missing or old one warns (backups need it) with how to install it', async () => {
    const here = await runDoctor({ platform: 'linux' });
    expect(formatDoctor(here)).toMatch(/^✓ restic ≥ 0\.14 \(backups\): restic 0\.\d+/m);
    const missing = await runDoctor({ platform: 'linux', run: fakeHost({ tmux: { stdout: 'tmux 3.4\n' } }) });
    expect(formatDoctor(missing)).toContain(
      '! restic ≥ 0.14 (backups): restic is not installed: hangar backup needs it\n    fix: restic is not installed on this host',
    );
    expect(formatDoctor(missing)).toContain('sudo apt-get install restic');
    const old = await runDoctor({
      platform: 'linux',
      run: fakeHost({
        tmux: { stdout: 'tmux 3.4\n' },
        restic: { stdout: 'restic 0.12.1 compiled with go1.16 on linux/amd64\n' },
      }),
    });
    expect(old.find((result) => result.name.startsWith('restic'))).toMatchObject({
      status: 'warn',
      detail: 'restic 0.12.1 is too old for hangar backup',
    });
  });

  it('a missing or old tmux fails with the command that fixes it', async () => {
    const missing = await runDoctor({ platform: 'linux', run: fakeHost({}) });
    expect(formatDoctor(missing)).toContain('✗ tmux ≥ 3.2: tmux is not installed\n    fix: install tmux 3.2 or newer');
    const old = await runDoctor({ platform: 'linux', run: fakeHost({ tmux: { stdout: 'tmux 3.1c\n' } }) });
    expect(old[0]).toMatchObject({ status: 'fail', detail: 'tmux 3.1c is too old' });
  });

  it('on a Mac with the known traps, each check says how to fix it', async () => {
    const results = await runDoctor({
      platform: 'darwin',
      tartImage: 'ghcr.io/cirruslabs/macos-sequoia-xcode:latest',
      freeBytes: async () => 12 * 1024 ** 3,
      run: fakeHost({
        tmux: { stdout: 'tmux 3.4\n' },
        'sw_vers -productVersion': { stdout: '13.6.1\n' },
        'tart --version': { stdout: '2.28.6\n' },
        'tart list --format json': { stdout: JSON.stringify([{ Name: 'dev-vm', Running: true }]) },
        defaults: { stdout: '{\n}\n' },
      }),
    });
    const output = formatDoctor(results);
    expect(output).toContain('✗ macOS version: macOS 13.6.1');
    expect(output).toContain('✓ Tart: tart 2.28.6');
    expect(output).toContain('fix: tart pull ghcr.io/cirruslabs/macos-sequoia-xcode:latest');
    expect(output).toContain('✗ DHCP lease time: 86400 s');
    expect(output).toContain('DHCPLeaseTimeSecs -int 600');
    expect(output).toContain('! free disk space: 12 GB free');
    expect(output).toContain("! 2-VM limit: other VMs take Apple's 2-VM allowance: dev-vm");
    expect(output).toContain('! guest agent: not verified');
  });

  it('without Tart, the fix is the brew command', async () => {
    const results = await runDoctor({
      platform: 'darwin',
      run: fakeHost({ tmux: { stdout: 'tmux 3.4\n' }, 'sw_vers -productVersion': { stdout: '15.1\n' } }),
    });
    expect(formatDoctor(results)).toContain(
      '✗ Tart: tart is not installed\n    fix: install Tart: brew install cirruslabs/cli/tart',
    );
  });

  it('registers a doctor command that prints one line per check', async () => {
    const program = new Command('hangar-agent').exitOverride();
    registerDoctor(program);
    const chunks: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => (chunks.push(chunk), true)) as typeof process.stdout.write;
    try {
      await program.parseAsync(['node', 'hangar-agent', 'doctor', '--json']);
    } finally {
      process.stdout.write = write;
      process.exitCode = undefined;
    }
    const parsed = JSON.parse(chunks.join('')) as { name: string }[];
    expect(parsed.map((result) => result.name)).toContain('tmux ≥ 3.2');
  });

  it.skipIf(process.platform !== 'linux' || !existsSync('/usr/bin/bwrap'))(
    'on a kernel that refuses user namespaces, the sandbox fails with the sysctl to change',
    async () => {
      const results = await runDoctor({ platform: 'linux', bwrapPath: bwrapWithoutUserNamespaces() });
      const sandbox = results.find((result) => result.name === 'bubblewrap sandbox')!;
      expect(sandbox.status).toBe('fail');
      expect(sandbox.detail).toContain('cannot create an unprivileged user namespace');
      expect(sandbox.fix).toContain('sysctl -w user.max_user_namespaces=15000');
      expect(sandbox.fix).toContain('sysctl -w kernel.apparmor_restrict_unprivileged_userns=0');
      expect(formatDoctor(results)).toMatch(/^✗ bubblewrap sandbox: bubblewrap cannot create .*\n {4}fix: allow /m);
    },
  );

  it.skipIf(process.platform !== 'linux' || !existsSync('/usr/bin/bwrap'))(
    'without slirp4netns, the sandbox network fails with the package to install; with it, it passes',
    async () => {
      const missing = await runDoctor({ platform: 'linux', slirp4netnsPath: '/nonexistent/slirp4netns' });
      const network = missing.find((result) => result.name === 'sandbox network')!;
      expect(network.status).toBe('fail');
      expect(network.detail).toContain('slirp4netns is not installed');
      expect(network.fix).toContain('apt-get install slirp4netns');
      expect(missing.find((result) => result.name === 'bubblewrap sandbox')!.status).toBe('ok');
      if (spawnSync('slirp4netns', ['--version']).status === 0) {
        const present = await runDoctor({ platform: 'linux' });
        expect(present.find((result) => result.name === 'sandbox network')!.status).toBe('ok');
      }
    },
  );

  it.skipIf(process.platform !== 'linux' || !existsSync('/usr/bin/bwrap'))(
    'a slirp4netns that cannot bring the network up (no /dev/net/tun) fails the check with what it said',
    async () => {
      // What slirp4netns says in a container started without --device /dev/net/tun.
      const dir = mkdtempSync(join(tmpdir(), 'hangar-fake-slirp-'));
      try {
        chmodSync(dir, 0o755);
        const fake = join(dir, 'slirp4netns');
        writeFileSync(fake, '#!/bin/sh\necho "open(\"/dev/net/tun\"): No such file or directory" >&2\nexit 1\n', {
          mode: 0o755,
        });
        const results = await runDoctor({ platform: 'linux', slirp4netnsPath: fake });
        const network = results.find((result) => result.name === 'sandbox network')!;
        expect(network.status).toBe('fail');
        expect(network.detail).toContain('/dev/net/tun');
        expect(network.fix).toContain('--device /dev/net/tun');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it.skipIf(process.platform !== 'linux' || !existsSync('/usr/bin/bwrap') || process.getuid?.() !== 0)(
    'an agent that is not root but in supplementary groups warns that its jobs keep them, and says how not to',
    () => {
      // Run as nobody, with and without a supplementary group (adm, gid 4), through the built agent.
      const dataDir = mkdtempSync(join(tmpdir(), 'hangar-doctor-user-'));
      try {
        chmodSync(dataDir, 0o777);
        const doctorAs = (groups: string) => {
          const script = join(import.meta.dirname, 'doctor-as-user.mjs');
          const argv = ['--reuid=65534', '--regid=65534', groups, '--', process.execPath, script, dataDir];
          const child = spawnSync('setpriv', argv, { encoding: 'utf8', timeout: 30_000 });
          expect(child.status, child.stderr).toBe(0);
          const results = JSON.parse(child.stdout) as { name: string; status: string; detail: string; fix?: string }[];
          return results.find((result) => result.name === 'sandbox user')!;
        };
        const inAdm = doctorAs('--groups=4');
        expect(inAdm.status).toBe('warn');
        expect(inAdm.detail).toContain('keep its supplementary groups (gid 4)');
        expect(inAdm.fix).toContain('run the agent as root');
        expect(doctorAs('--clear-groups')).toMatchObject({ status: 'ok' });
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  );

  it.skipIf(process.platform !== 'linux' || !existsSync('/usr/bin/bwrap') || process.getuid?.() !== 0)(
    'an agent that is root says who jobs run as, and how to give them a user of their own',
    async () => {
      const results = await runDoctor({ platform: 'linux' });
      const user = results.find((result) => result.name === 'sandbox user')!;
      if (findJobUser()?.name === 'hangar-job') {
        expect(user).toMatchObject({ status: 'ok', detail: expect.stringContaining('jobs run as hangar-job') });
      } else {
        expect(user).toMatchObject({ status: 'warn', detail: expect.stringContaining('jobs run as nobody') });
        expect(user.fix).toContain('useradd --system');
      }
    },
  );
});
