// The system unit's hardening must not break what the agent exists for: bubblewrap sandboxes
// (user namespaces, mounts) and tmux. systemd cannot apply the unit here, so the options it can be
// checked against are reproduced with the kernel features systemd uses for them: NoNewPrivileges=
// is prctl(PR_SET_NO_NEW_PRIVS) (setpriv --no-new-privs), ProtectSystem=full is a private mount
// namespace with /usr, /boot and /etc read-only. The seccomp-based options (ProtectKernelModules,
// ProtectKernelLogs, RestrictSUIDSGID, RestrictRealtime, LockPersonality) filter syscalls neither
// bwrap nor tmux makes, and are not reproduced. The options that would break them must stay out.
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { AGENT_BIN } from '../support/processes.js';

const exec = promisify(execFile);
const NOBODY = '65534';

async function systemUnit(): Promise<string[]> {
  const { stdout } = await exec(process.execPath, [AGENT_BIN, 'install', '--system', '--dry-run'], {
    env: { ...process.env, HANGAR_INSTALL_PREFIX: '/nonexistent-prefix' },
  });
  const unit = stdout.split('write /nonexistent-prefix/etc/systemd/system/hangar-agent.service')[1]!.split('\n9. ')[0]!;
  return unit
    .split('\n')
    .map((line) => line.replace(/^\s*\| ?/, ''))
    .filter((line) => /^\w+=/.test(line));
}

/** Runs argv as an unprivileged user under no_new_privs, with /usr, /boot and /etc read-only. */
function underHardening(argv: string[]) {
  const readOnly = 'for d in /usr /boot /etc; do [ -d $d ] && mount --bind $d $d && mount -o remount,bind,ro $d; done';
  return exec(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      `${readOnly}; exec setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups --no-new-privs "$@"`,
      'hardened',
      ...argv,
    ],
    {
      // nobody's login shell is nologin, which tmux would run the session's command with (and the
      // session would end at once) wherever SHELL is unset, as in CI. The service user the installer
      // makes has a real shell; SHELL stands in for it here.
      env: { ...process.env, SHELL: '/bin/sh' },
    },
  );
}

describe('the system unit’s hardening', () => {
  it('leaves out every option that would break bubblewrap, tmux or the delegated cgroup', async () => {
    const keys = (await systemUnit()).map((line) => line.split('=')[0]);
    expect(keys).toEqual(expect.arrayContaining(['NoNewPrivileges', 'ProtectSystem', 'Delegate', 'KillMode']));
    for (const breaking of [
      'RestrictNamespaces',
      'PrivateUsers',
      'PrivateTmp',
      'ProtectControlGroups',
      'SystemCallFilter',
      'ProtectClock',
      'ProtectHome',
      'ProtectKernelTunables',
    ]) {
      expect(keys).not.toContain(breaking);
    }
  });

  it('bubblewrap still makes its namespaces under NoNewPrivileges and ProtectSystem=full', async () => {
    const unit = await systemUnit();
    expect(unit).toContain('NoNewPrivileges=yes');
    expect(unit).toContain('ProtectSystem=full');
    const { stdout } = await underHardening([
      'bwrap',
      '--unshare-all',
      '--die-with-parent',
      '--ro-bind',
      '/',
      '/',
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '/bin/sh',
      '-c',
      'echo "uid=$(id -u)"; grep NoNewPrivs /proc/self/status; touch /usr/hangar-probe 2>&1 || true',
    ]);
    expect(stdout).toContain(`uid=${NOBODY}`);
    expect(stdout).toMatch(/NoNewPrivs:\s+1/);
    expect(stdout).toMatch(/Read-only file system/);
  });

  it('tmux still starts a server and a session under the same restrictions', async () => {
    const socket = `hangar-hardening-${process.pid}`;
    try {
      await underHardening(['tmux', '-L', socket, '-f', '/dev/null', 'new-session', '-d', '-s', 'probe', 'sleep 30']);
      const { stdout } = await underHardening(['tmux', '-L', socket, 'list-sessions', '-F', '#{session_name}']);
      expect(stdout.trim()).toBe('probe');
    } finally {
      await underHardening(['tmux', '-L', socket, 'kill-server']).catch(() => undefined); // already gone
      // A server killed as another user can leave its socket file behind in /tmp/tmux-65534.
      rmSync(`/tmp/tmux-${NOBODY}/${socket}`, { force: true });
    }
  });
});
