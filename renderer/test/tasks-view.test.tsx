// @vitest-environment jsdom
import { act, cleanup, render, screen, within } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CoreApi, CoreEventData, HostView, TaskInfo } from '../src/api/index.js';
import { paletteActions, type PaletteCommands } from '../src/views/palette-actions.js';
import TasksView from '../src/views/tasks-view.js';
import { useTasks } from '../src/views/use-tasks.js';
import { hostView } from './host-views.js';

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
});

const hosts: HostView[] = [hostView('mini')];

function task(id: string, overrides: Partial<TaskInfo> = {}): TaskInfo {
  return {
    id,
    spec: { prompt: 'fix the parser', agent: ['claude'], needs: [], runner: 'any' },
    state: 'running',
    host: 'mini',
    session: `task-${id.slice(2, 10)}`,
    created_at: 1,
    claimed_at: 1,
    updated_at: 1,
    finished_at: null,
    detail: null,
    reason: null,
    exit_code: null,
    ...overrides,
  };
}

type Listener = (data: CoreEventData<'task.updated'>) => void;

/** A core whose tasks.list answers when the test says, and that lets the test push task.updated. */
function fakeCore() {
  const listeners: Listener[] = [];
  let answer: (result: unknown) => void = () => {};
  const call = vi.fn((method: string): Promise<unknown> =>
    method === 'tasks.list' ? new Promise((resolve) => (answer = resolve)) : Promise.resolve({}),
  );
  const api = {
    call,
    on: (event: string, listener: Listener) => {
      if (event === 'task.updated') listeners.push(listener);
      return { dispose: () => void listeners.splice(listeners.indexOf(listener), 1) };
    },
    openStream: () => {
      throw new Error('the tasks view opens no stream');
    },
    onDisconnect: () => ({ dispose: () => {} }),
  } as unknown as CoreApi;
  return {
    api,
    call,
    list: (result: unknown) => act(async () => answer(result)),
    push: (data: CoreEventData<'task.updated'>) => act(() => listeners.forEach((l) => l(data))),
  };
}

function Harness({ api }: { api: CoreApi }) {
  const data = useTasks(api, hosts);
  return (
    <TasksView
      api={api}
      hosts={hosts}
      data={data}
      selected={undefined}
      focusRequest={0}
      onSelect={() => {}}
      onAdded={() => {}}
      onOpen={() => {}}
      onCancel={() => {}}
    />
  );
}

const A = 't-aaaaaaaaaaaaaaaa';
const B = 't-bbbbbbbbbbbbbbbb';

describe('tasks view', () => {
  it('a change heard while the listing is on its way is not undone by that older listing', async () => {
    const { api, list, push } = fakeCore();
    render(<Harness api={api} />);
    await push({
      task: task(A, { state: 'waiting_input', detail: 'Claude needs your permission to use Bash' }),
    });
    await list({ queued: [], hosts: [{ host: 'mini', tasks: [task(A, { state: 'running' })], error: null }] });
    const row = screen.getByRole('listitem', { name: 'Task fix the parser' });
    expect(within(row).getByText('needs you')).toBeTruthy();
    expect(within(row).getByText('Claude needs your permission to use Bash')).toBeTruthy();
  });

  it('a task both queued here and claimed by a host is listed once, as the host has it; hosts not listed are said', async () => {
    const { api, list } = fakeCore();
    render(<Harness api={api} />);
    await list({
      queued: [task(A, { state: 'queued', host: null, session: null, reason: 'no host can take it now' })],
      hosts: [
        { host: 'mini', tasks: [task(A, { state: 'starting' })], error: null },
        { host: 'vps', tasks: [], error: { code: 'E_HOST_UNREACHABLE', message: 'connection refused' } },
      ],
    });
    const rows = screen.getAllByRole('listitem', { name: 'Task fix the parser' });
    expect(rows).toHaveLength(1);
    expect(within(rows[0]!).getByText('starting')).toBeTruthy();
    expect(screen.getByText('Tasks on vps are not shown: connection refused')).toBeTruthy();
  });
});

describe('task actions in the palette', () => {
  const commands = {
    openTask: vi.fn(),
    cancelTask: vi.fn(),
    newTask: vi.fn(),
    showTasks: vi.fn(),
  } as Partial<PaletteCommands> as PaletteCommands;
  const labels = (tasks: TaskInfo[]) =>
    paletteActions({ hosts, sessions: {}, jobs: [], previews: {}, tabs: [], activeTab: undefined, tasks }, commands)
      .filter((a) => a.group === 'Tasks')
      .map((a) => a.label);

  it('offers a terminal once a host runs the task, and cancelling until it has ended', () => {
    expect(labels([task(A, { state: 'queued', host: null, session: null }), task(B, { state: 'completed' })])).toEqual([
      'New task…',
      'Show tasks',
      'Cancel task: fix the parser (queued · t-aaaaaaaa)…',
      "Open task's terminal: fix the parser (mini · t-bbbbbbbb)",
    ]);
  });

  it('two tasks with the same prompt keep an entry each', () => {
    expect(labels([task(A), task(B)]).filter((l) => l.startsWith('Cancel task:'))).toEqual([
      'Cancel task: fix the parser (mini · t-aaaaaaaa)…',
      'Cancel task: fix the parser (mini · t-bbbbbbbb)…',
    ]);
  });
});
