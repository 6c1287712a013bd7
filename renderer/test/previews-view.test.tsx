// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen, within } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CoreApi, CoreEventData, CoreMethod, CoreParams, HostView, PreviewView } from '../src/api/index.js';
import { paletteActions, type PaletteCommands } from '../src/views/palette-actions.js';
import { usePreviews } from '../src/views/use-previews.js';
import PreviewsView from '../src/views/previews-view.js';
import { hostView, offlineLaptop } from './host-views.js';

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
});

const hosts: HostView[] = [hostView('mini'), hostView('vps'), offlineLaptop];

const web: PreviewView = { port: 5173, label: 'web', created_at: 0, listening: true, local_url: null };
const docs: PreviewView = {
  port: 6006,
  label: null,
  created_at: 0,
  listening: false,
  local_url: 'http://localhost:6006/',
};

type Listener = (data: CoreEventData<'previews.changed'>) => void;

/** A core that answers previews.* from a table and lets the test push previews.changed. */
function fakeCore() {
  const state: Record<
    string,
    {
      previews: PreviewView[];
      listening: { port: number; address: string; pid: number | null; process: string | null }[];
    }
  > = {
    mini: {
      previews: [web, docs],
      listening: [{ port: 3000, address: '127.0.0.1', pid: 4242, process: 'node' }],
    },
    vps: { previews: [], listening: [] },
  };
  const listeners: Listener[] = [];
  const call = vi.fn(async (method: CoreMethod, params: CoreParams<CoreMethod>): Promise<unknown> => {
    const { host, port, label } = params as { host: string; port: number; label?: string };
    switch (method) {
      case 'previews.list':
        // A copy, as over the wire: a listing answers with the host's state when it was asked.
        return {
          hosts: [{ host, previews: [...state[host]!.previews], listening: [...state[host]!.listening], error: null }],
        };
      case 'previews.open':
        return { url: `http://localhost:${port}/`, local_port: port };
      case 'previews.add': {
        const added = { port, label: label ?? null, created_at: 1, listening: true, local_url: null };
        state[host]!.previews.push(added);
        state[host]!.listening = state[host]!.listening.filter((l) => l.port !== port);
        return added;
      }
      default:
        return {};
    }
  });
  const api = {
    call,
    on: (event: string, listener: Listener) => {
      if (event === 'previews.changed') listeners.push(listener);
      return { dispose: () => void listeners.splice(listeners.indexOf(listener), 1) };
    },
    openStream: () => {
      throw new Error('the previews view opens no stream');
    },
    onDisconnect: () => ({ dispose: () => {} }),
  } as unknown as CoreApi;
  const push = (data: CoreEventData<'previews.changed'>) => act(() => listeners.forEach((l) => l(data)));
  return { api, call, state, push };
}

function Harness({ api, shown = true }: { api: CoreApi; shown?: boolean }) {
  const previews = usePreviews(api, hosts, shown);
  return shown ? <PreviewsView hosts={hosts} previews={previews} /> : null;
}

describe('previews view', () => {
  it("shows each host's previews, where they are served, and the ports listening there", async () => {
    const { api } = fakeCore();
    render(<Harness api={api} />);
    const served = await screen.findByRole('listitem', { name: 'Preview mini:6006' });
    expect(within(served).getByText('nothing listens on 6006')).toBeTruthy();
    expect(within(served).getByRole('link', { name: 'http://localhost:6006/' })).toBeTruthy();
    expect(within(served).getByRole('button', { name: 'Stop serving preview mini:6006' })).toBeTruthy();
    const notServed = screen.getByRole('listitem', { name: 'Preview mini:5173' });
    expect(within(notServed).getByText('web')).toBeTruthy();
    expect(within(notServed).getByText('listening')).toBeTruthy();
    expect(within(notServed).queryByRole('button', { name: /Stop serving/ })).toBeNull();
    const candidates = screen.getByRole('list', { name: 'Listening ports on mini' });
    expect(within(candidates).getByText('node')).toBeTruthy();
    expect(within(candidates).getByText(/pid 4242/)).toBeTruthy();
    expect(await screen.findByText('No previews on vps. Start a dev server there, or add a port below.')).toBeTruthy();
    const laptop = screen.getByRole('region', { name: 'Previews on laptop' });
    expect(within(laptop).getByText(/laptop is offline: connection refused/)).toBeTruthy();
  });

  it('Open serves the preview here and shows it in a new browser tab', async () => {
    const { api, call } = fakeCore();
    const opened = vi.spyOn(window, 'open').mockReturnValue(null);
    render(<Harness api={api} />);
    fireEvent.click(await screen.findByRole('button', { name: 'Open preview mini:5173' }));
    await vi.waitFor(() =>
      expect(opened).toHaveBeenCalledWith('http://localhost:5173/', '_blank', 'noopener,noreferrer'),
    );
    expect(call).toHaveBeenCalledWith('previews.open', { host: 'mini', port: 5173 });
  });

  it('Add preview on a listening port makes it a preview of that host', async () => {
    const { api, call } = fakeCore();
    render(<Harness api={api} />);
    fireEvent.click(await screen.findByRole('button', { name: 'Add preview mini:3000' }));
    expect(call).toHaveBeenCalledWith('previews.add', { host: 'mini', port: 3000 });
    await screen.findByRole('listitem', { name: 'Preview mini:3000' });
    // A listing answered while the Add was on its way may show both; once the Add is done, only the preview.
    await vi.waitFor(() => expect(screen.queryByRole('button', { name: 'Add preview mini:3000' })).toBeNull());
  });

  it('a listing asked for before an Add and answered after it does not bring the old list back', async () => {
    const { api, call, state } = fakeCore();
    render(<Harness api={api} />);
    const add = await screen.findByRole('button', { name: 'Add preview mini:3000' });
    // Refresh asks for a listing; its answer (the list before the Add) is held until after the Add.
    let answer: (value: unknown) => void = () => {};
    const before = { host: 'mini', previews: [...state['mini']!.previews], listening: [...state['mini']!.listening] };
    call.mockImplementationOnce(() => new Promise((resolve) => (answer = resolve)));
    fireEvent.click(screen.getByRole('button', { name: 'Refresh previews on mini' }));
    fireEvent.click(add);
    await screen.findByRole('listitem', { name: 'Preview mini:3000' });
    await act(async () => answer({ hosts: [{ ...before, error: null }] }));
    expect(screen.getByRole('listitem', { name: 'Preview mini:3000' })).toBeTruthy();
    expect(screen.queryByRole('button', { name: 'Add preview mini:3000' })).toBeNull();
  });

  it('a port out of range in the form is refused with a message, and nothing is asked of the host', async () => {
    const { api, call } = fakeCore();
    render(<Harness api={api} />);
    const form = await screen.findByRole('form', { name: 'Add a preview on vps' });
    for (const typed of ['70000', '0', 'abc', '51.73']) {
      fireEvent.change(within(form).getByLabelText('Port'), { target: { value: typed } });
      fireEvent.click(within(form).getByRole('button', { name: /Add port/ }));
      expect(within(form).getByRole('alert').textContent).toMatch(/whole number from 1 to 65535/);
    }
    expect(call.mock.calls.filter(([method]) => method === 'previews.add')).toEqual([]);

    fireEvent.change(within(form).getByLabelText('Port'), { target: { value: '8080' } });
    fireEvent.change(within(form).getByLabelText('Label (optional)'), { target: { value: 'api' } });
    fireEvent.click(within(form).getByRole('button', { name: /Add port/ }));
    expect(call).toHaveBeenCalledWith('previews.add', { host: 'vps', port: 8080, label: 'api' });
    await screen.findByRole('listitem', { name: 'Preview vps:8080' });
    expect(within(form).queryByRole('alert')).toBeNull();
  });

  it('a preview added or closed elsewhere, or a dev server that starts, shows at once without asking', async () => {
    const { api, call, state, push } = fakeCore();
    render(<Harness api={api} />);
    await screen.findByText(/No previews on vps/);
    const listingsBefore = call.mock.calls.length;
    const grpc = { port: 9000, label: null, created_at: 2, listening: true, local_url: 'http://localhost:9000/' };
    state['vps']!.previews.push(grpc);
    push({ host: 'vps', previews: [grpc], listening: [] });
    expect(screen.getByRole('button', { name: 'Stop serving preview vps:9000' })).toBeTruthy();
    state['vps']!.previews = [{ ...grpc, local_url: null }];
    push({ host: 'vps', previews: state['vps']!.previews, listening: [] });
    expect(screen.queryByRole('button', { name: 'Stop serving preview vps:9000' })).toBeNull();
    // A dev server started on the host: the event carries it as a candidate.
    const storybook = { port: 6006, address: '127.0.0.1', pid: 77, process: 'node storybook dev' };
    push({ host: 'vps', previews: state['vps']!.previews, listening: [storybook] });
    expect(screen.getByRole('button', { name: 'Add preview vps:6006' })).toBeTruthy();
    // Events are the whole picture: nothing is listed again after them.
    expect(call).toHaveBeenCalledTimes(listingsBefore);
  });

  it('the hosts watch their listening ports only while the view is shown, and showing it lists them again', async () => {
    const { api, call } = fakeCore();
    const watches = () => call.mock.calls.filter(([method]) => method === 'previews.watch').map(([, params]) => params);
    const listings = () => call.mock.calls.filter(([method]) => method === 'previews.list').length;
    const { rerender, unmount } = render(<Harness api={api} shown={false} />);
    await vi.waitFor(() => expect(listings()).toBe(2)); // mini and vps came online (the palette offers them)
    expect(watches()).toEqual([]);
    rerender(<Harness api={api} shown />);
    expect(watches()).toEqual([{ watch: true }]);
    // Ports may have moved while nobody watched: what listens now is asked for.
    expect(listings()).toBe(4);
    await screen.findByRole('listitem', { name: 'Preview mini:5173' });
    rerender(<Harness api={api} shown={false} />);
    expect(watches()).toEqual([{ watch: true }, { watch: false }]);
    rerender(<Harness api={api} shown />);
    unmount();
    expect(watches()).toEqual([{ watch: true }, { watch: false }, { watch: true }, { watch: false }]);
  });

  it('the palette offers to open each preview and to add each port that listens', () => {
    const commands = {
      openPreview: vi.fn(),
      addPreview: vi.fn(),
      showPreviews: vi.fn(),
    } as Partial<PaletteCommands> as PaletteCommands;
    const vite = 'node /home/me/app/node_modules/vite/bin/vite.js --port 5174 --strictPort';
    const actions = paletteActions(
      {
        hosts,
        sessions: {},
        jobs: [],
        previews: {
          mini: {
            previews: [web],
            listening: [
              { port: 5174, address: '127.0.0.1', pid: 7, process: vite },
              { port: 2024, address: '0.0.0.0', pid: null, process: null },
            ],
            error: null,
          },
        },
        tabs: [],
        activeTab: undefined,
      },
      commands,
    ).filter((a) => a.group === 'Previews');
    expect(actions.map((a) => a.label)).toEqual([
      'Open preview mini:5173',
      'Show previews',
      'Add preview mini:5174 (node /home/me/app/node_modules/vite/bin…)',
      'Add preview mini:2024',
    ]);
    actions[0]!.run();
    actions[2]!.run();
    expect(commands.openPreview).toHaveBeenCalledWith('mini', 5173);
    expect(commands.addPreview).toHaveBeenCalledWith('mini', 5174);
  });
});
