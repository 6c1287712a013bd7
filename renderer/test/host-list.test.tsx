// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen, within } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { HostView, TmuxServerState } from '../src/api/index.js';
import { HostList, type HostListProps } from '../src/components/host-list.js';
import { hostView, offlineLaptop } from './host-views.js';

afterEach(cleanup);

const stats = {
  load: [2, 1, 1],
  cpus: 8,
  mem_total: 16e9,
  mem_free: 4e9,
  disk_total: 500e9,
  disk_free: 250e9,
  sessions: 1,
  running_jobs: 2,
  capabilities: { tmux: true, tart: false, bubblewrap: true },
  tmux: { ok: true, message: null, lost_sessions: [], lost_at: null },
};

const LOST: TmuxServerState = {
  ok: false,
  message:
    'the tmux server (pid 4242) exited while session "work" ran in it (it was killed or crashed); it was lost. A new session starts a fresh tmux server',
  lost_sessions: ['work'],
  lost_at: 0,
};

const hosts: HostView[] = [
  hostView('mini', {
    address: 'mini.tailnet:7070',
    info: { hostname: 'mini', os: 'linux', arch: 'x64', agent_version: '0.1.0', tmux_version: '3.4', session_limit: 5 },
    stats,
  }),
  hostView('vps', { status: 'connecting' }),
  offlineLaptop,
];

function props(overrides: Partial<HostListProps> = {}): HostListProps {
  return {
    hosts,
    error: undefined,
    sessions: {
      mini: {
        sessions: [
          {
            name: 'agent',
            command: ['claude'],
            cwd: '/',
            created_at: 0,
            attached_clients: 0,
            alive: true,
            agent: {
              kind: 'claude-code',
              state: 'waiting_input',
              since: 0,
              detail: 'Claude needs your permission to use Bash',
            },
          },
          { name: 'shell', command: ['bash'], cwd: '/', created_at: 0, attached_clients: 0, alive: true, agent: null },
        ],
        error: null,
        tmux: stats.tmux,
      },
    },
    onAttach: vi.fn(),
    onNewSession: vi.fn(),
    onAddHost: vi.fn(),
    onRename: vi.fn(),
    onRemove: vi.fn(),
    onRetry: vi.fn(),
    ...overrides,
  };
}

/** A host of the account that this computer has not linked: only the relay's word. */
function accountHost(
  name: string,
  presence: 'online' | 'offline' | 'relay_unreachable',
  error: string | null = null,
): HostView {
  return hostView(name, {
    address: '192.168.1.20:7070',
    status: 'offline',
    error,
    last_seen: Date.now() - 120_000,
    via: 'relay',
    account: {
      host_id: `host_${'a'.repeat(32)}`,
      name,
      presence,
      last_seen: Date.now() - 120_000,
      enrolled_at: 1,
      addresses: ['192.168.1.20:7070'],
      tailnet: [],
    },
  });
}

describe('host list', () => {
  it("shows the account's hosts with the relay's word: online, offline with when last seen, or relay unreachable", () => {
    const refused = 'mini2 does not let this computer in: a device it trusts must approve this one first';
    render(
      <HostList
        {...props({
          hosts: [
            accountHost('box', 'online'),
            accountHost('vps', 'offline'),
            accountHost('edge', 'relay_unreachable'),
            accountHost('mini2', 'online', refused),
          ],
        })}
      />,
    );
    expect(screen.getByRole('listitem', { name: 'box, online at the relay' })).toBeTruthy();
    const vps = screen.getByRole('listitem', { name: 'vps, offline' });
    expect(within(vps).getByText(/via relay · last seen 2m ago/)).toBeTruthy();
    const edge = screen.getByRole('listitem', { name: 'edge, relay unreachable' });
    expect(within(edge).getByText(/relay cannot be reached; hosts paired directly still work/)).toBeTruthy();
    const mini2 = screen.getByRole('listitem', { name: 'mini2, online, not linked' });
    expect(within(mini2).getByText(refused)).toBeTruthy();
    expect((within(mini2).getByRole('button', { name: 'New session' }) as HTMLButtonElement).disabled).toBe(true);
  });

  it('shows how a linked host is reached and its round trip, and no round trip for a host that is not online', () => {
    const box = {
      ...accountHost('box', 'online'),
      status: 'online' as const,
      info: hosts[0]!.info,
      via: 'p2p' as const,
      rtt_ms: 48.6,
    };
    const mini = { ...hosts[0]!, rtt_ms: 0.437 };
    const laptop = { ...hosts[2]!, rtt_ms: 12 };
    render(<HostList {...props({ hosts: [box, mini, laptop] })} />);
    expect(within(screen.getByRole('listitem', { name: 'box, online' })).getByText(/via p2p · 49 ms/)).toBeTruthy();
    expect(within(screen.getByRole('listitem', { name: 'mini, online' })).getByText('linux x64 · 0.4 ms')).toBeTruthy();
    expect(within(screen.getByRole('listitem', { name: 'laptop, offline' })).queryByText(/ms/)).toBeNull();
  });

  it("marks a host whose keys this computer took on the relay's word (approved without a code), and no other", () => {
    const box = {
      ...accountHost('box', 'online'),
      status: 'online' as const,
      via: 'relay' as const,
      keys_from_relay: true,
    };
    render(<HostList {...props({ hosts: [box, hosts[0]!] })} />);
    expect(
      within(screen.getByRole('listitem', { name: 'box, online' })).getByText(/keys: the relay's word/),
    ).toBeTruthy();
    expect(within(screen.getByRole('listitem', { name: 'mini, online' })).queryByText(/relay's word/)).toBeNull();
  });

  it('shows each host with its status, OS, capabilities and load', () => {
    render(<HostList {...props()} />);
    const mini = screen.getByRole('listitem', { name: 'mini, online' });
    expect(within(mini).getByText('linux x64')).toBeTruthy();
    expect(within(mini).getByText('tmux')).toBeTruthy();
    // Tart is macOS only: a Linux host is not told it lacks it.
    expect(within(mini).queryByText(/Tart/)).toBeNull();
    expect(within(mini).getByText('bubblewrap')).toBeTruthy();
    expect(within(mini).getByText('25%')).toBeTruthy(); // load 2 on 8 CPUs
    expect(within(mini).getByText('75%')).toBeTruthy(); // memory
    expect(within(mini).getByText('2 running')).toBeTruthy();
    expect(screen.getByRole('listitem', { name: 'vps, connecting…' })).toBeTruthy();
    const laptop = screen.getByRole('listitem', { name: 'laptop, offline' });
    expect(within(laptop).getByText(/connection refused/)).toBeTruthy();
    expect(within(laptop).getByText(/hangar-agent serve/)).toBeTruthy();
  });

  it('shows only the executors that apply to a host: Tart on macOS, bubblewrap on Linux', () => {
    const mac = hostView('studio', {
      info: {
        hostname: 'studio',
        os: 'darwin 24.1.0',
        arch: 'arm64',
        agent_version: '0.1.0',
        tmux_version: '3.4',
        session_limit: 5,
      },
      stats: { ...stats, capabilities: { tmux: true, tart: false, bubblewrap: false } },
    });
    const linux = hostView('vps', {
      info: {
        hostname: 'vps',
        os: 'linux 6.1.0',
        arch: 'x64',
        agent_version: '0.1.0',
        tmux_version: '3.4',
        session_limit: 5,
      },
      stats: { ...stats, capabilities: { tmux: true, tart: false, bubblewrap: false } },
    });
    render(<HostList {...props({ hosts: [mac, linux] })} />);
    const studio = within(screen.getByRole('listitem', { name: 'studio, online' }));
    expect(studio.getByText('Tart (missing)')).toBeTruthy();
    expect(studio.queryByText(/bubblewrap/)).toBeNull();
    const vps = within(screen.getByRole('listitem', { name: 'vps, online' }));
    expect(vps.getByText('bubblewrap (missing)')).toBeTruthy();
    expect(vps.queryByText(/Tart/)).toBeNull();
  });

  it("says when a host's agent has an update on its channel, and how to apply it; nothing otherwise", () => {
    const update = { channel: 'stable', current: '0.1.0', checked_at: 1, error: null };
    const [mini, ...rest] = hosts;
    const withUpdate = (latest: string, available: boolean): HostView[] => [
      { ...mini!, info: { ...mini!.info!, update: { ...update, latest, available } } },
      ...rest,
    ];
    const { rerender } = render(<HostList {...props()} hosts={withUpdate('0.2.0', true)} />);
    const note = screen.getByRole('status', { name: 'Update available for mini' });
    expect(note.textContent).toContain('hangar-agent 0.2.0 (runs 0.1.0)');
    expect(within(note).getByText('hangar-agent update')).toBeTruthy();
    rerender(<HostList {...props()} hosts={withUpdate('0.1.0', false)} />);
    expect(screen.queryByRole('status', { name: 'Update available for mini' })).toBeNull();
  });

  it('a session button attaches to it; actions are named for screen readers', () => {
    const p = props();
    render(<HostList {...p} />);
    fireEvent.click(screen.getByRole('button', { name: 'Attach to mini/agent' }));
    expect(p.onAttach).toHaveBeenCalledWith('mini', 'agent');
    fireEvent.click(screen.getByRole('button', { name: 'Rename vps' }));
    expect(p.onRename).toHaveBeenCalledWith('vps');
    // No new session on a host that is not online.
    const laptop = screen.getByRole('listitem', { name: 'laptop, offline' });
    expect((within(laptop).getByRole('button', { name: 'New session' }) as HTMLButtonElement).disabled).toBe(true);
  });

  it('shows what Claude in a session is doing, in its own words, and nothing for other sessions', () => {
    render(<HostList {...props()} />);
    const badge = screen.getByRole('status', {
      name: 'Claude in mini/agent: needs you (Claude needs your permission to use Bash)',
    });
    expect(badge.textContent).toBe('needs you');
    const shell = screen.getByRole('button', { name: 'Attach to mini/shell' });
    expect(within(shell).queryByRole('status')).toBeNull();
  });

  it("shows a host's control characters in a command, Claude's words or an error as text", () => {
    const hostile = '\x1b]0;owned\x07\u202e';
    const mini = props().sessions['mini']!;
    const sessions = {
      mini: {
        ...mini,
        error: null,
        sessions: [
          { ...mini.sessions[0]!, agent: { ...mini.sessions[0]!.agent!, detail: `asks ${hostile}` } },
          { ...mini.sessions[1]!, command: ['sh', '-c', `sleep 9 # ${hostile}`] },
        ],
      },
    };
    const offline = { ...hosts[2]!, error: `refused ${hostile}` };
    render(<HostList {...props({ sessions, hosts: [hosts[0]!, offline] })} />);
    const shown = '\\x1b]0;owned\\x07\\u202e';
    expect(screen.getByText(`sh -c sleep 9 # ${shown}`)).toBeTruthy();
    expect(screen.getByRole('status', { name: `Claude in mini/agent: needs you (asks ${shown})` })).toBeTruthy();
    expect(screen.getByText(`refused ${shown}`)).toBeTruthy();
    expect(document.body.textContent).not.toMatch(/[\u0000-\u001f\u202e]/);
  });

  it('a host whose tmux server went away says which sessions were lost, not just "No sessions"', () => {
    render(<HostList {...props({ sessions: { mini: { sessions: [], error: null, tmux: LOST } } })} />);
    const mini = screen.getByRole('listitem', { name: 'mini, online' });
    const alert = within(mini).getByRole('alert');
    expect(alert.textContent).toMatch(/^Sessions lost: the tmux server \(pid 4242\) exited while session "work"/);
    expect(alert.textContent).toMatch(/A new session starts a fresh tmux server/);
  });

  it('the hosts view alone (before the sessions are listed) tells the loss too', () => {
    const lostHosts = [{ ...hosts[0]!, stats: { ...stats, tmux: LOST } }];
    render(<HostList {...props({ hosts: lostHosts, sessions: {} })} />);
    expect(screen.getByRole('alert').textContent).toMatch(/pid 4242/);
  });

  it('with no hosts, says how to add one', () => {
    const p = props({ hosts: [] });
    render(<HostList {...p} />);
    expect(screen.getByText(/hangar-agent pair/)).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Add host…' }));
    expect(p.onAddHost).toHaveBeenCalled();
  });

  it('when the hosts cannot be loaded, says why and offers to retry', () => {
    const p = props({ hosts: undefined, error: 'lost the connection to the Hangar core' });
    render(<HostList {...p} />);
    expect(screen.getByRole('alert').textContent).toMatch(/lost the connection/);
    fireEvent.click(screen.getByRole('button', { name: 'Try again' }));
    expect(p.onRetry).toHaveBeenCalled();
  });
});
