import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { connectUi } from '../../electron/core/test/api/ui-client.js';
import { HangarCore } from '../../electron/core/src/core.js';
import { WebServer } from '../../electron/core/src/web/server.js';
import { usePairedHost } from '../support/paired-host.js';
import { BASH, hangar, tmux } from '../support/processes.js';

const LOST =
  /^hangar: box: the tmux server \(pid (\d+)\) exited while session "work" ran in it \(it was killed or crashed\); it was lost\. A new session starts a fresh tmux server\n$/;

/**
 * A host's tmux server killed (or crashed) with a session on it: the user is told the session
 * was lost, by `hangar session ls` and in the UI's host list, instead of seeing "no sessions".
 */
describe('a lost tmux server', () => {
  const host = usePairedHost();

  it('is reported by hangar session ls (status 1) and in the hosts view, until a new session starts a fresh one', async () => {
    expect((await hangar(host.home, ['session', 'new', 'box', '--name', 'work', ...BASH])).stderr).toBe('');
    expect((await hangar(host.home, ['session', 'ls', 'box'])).code).toBe(0);
    const pid = Number((await tmux(host.dataDir, ['display-message', '-p', '#{pid}'])).trim());
    process.kill(pid, 'SIGKILL');

    const listed = await hangar(host.home, ['session', 'ls', 'box']);
    expect(listed.code).toBe(1);
    expect(listed.stderr).toMatch(LOST);
    expect(Number(LOST.exec(listed.stderr)![1])).toBe(pid);
    const all = await hangar(host.home, ['session', 'ls']);
    expect(all.code).toBe(1);
    expect(all.stderr).toMatch(LOST);
    const json = await hangar(host.home, ['session', 'ls', 'box', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual([
      {
        host: 'box',
        sessions: [],
        tmux: {
          ok: false,
          message: expect.stringContaining('"work"'),
          lost_sessions: ['work'],
          lost_at: expect.any(Number),
        },
      },
    ]);

    // The UI's views: the host (HostView.stats.tmux) and its sessions.
    const core = await HangarCore.open({ home: host.home, logger: pino({ level: 'silent' }) });
    const web = await WebServer.start({ core, staticDir: host.home, logger: pino({ level: 'silent' }) });
    const ui = await connectUi(web.port, web.secret);
    try {
      // The window's first look finds the host still connecting: ask again until it is online.
      let { hosts } = await ui.call('hosts.list', {});
      for (const deadline = Date.now() + 15_000; hosts[0]!.stats === null && Date.now() < deadline;) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        ({ hosts } = await ui.call('hosts.list', {}));
      }
      expect(hosts[0]!.stats?.tmux).toMatchObject({ ok: false, lost_sessions: ['work'] });
      expect(hosts[0]!.stats?.tmux.message).toContain(`pid ${pid}`);
      const sessions = await ui.call('sessions.list', {});
      expect(sessions.hosts[0]).toMatchObject({ host: 'box', sessions: [], tmux: { ok: false } });
    } finally {
      ui.close();
      await web.dispose();
      await core.dispose();
    }

    // A new session starts a fresh server; nothing is reported any more.
    expect((await hangar(host.home, ['session', 'new', 'box', '--name', 'next', ...BASH])).stderr).toBe('');
    const after = await hangar(host.home, ['session', 'ls', 'box']);
    expect(after).toMatchObject({ code: 0, stderr: '' });
    expect(after.stdout).toMatch(/next/);
  });
});
