// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CommandPalette, type PaletteAction } from '../src/views/command-palette.js';

// cmdk measures and scrolls items; jsdom has neither.
beforeEach(() => {
  localStorage.clear();
  Element.prototype.scrollIntoView = vi.fn();
  globalThis.ResizeObserver ??= class {
    observe() {}
    unobserve() {}
    disconnect() {}
  } as unknown as typeof ResizeObserver;
});
afterEach(cleanup);

function actions(ran: string[]): PaletteAction[] {
  return [
    { id: 'new-session:mini', label: 'New session on mini', group: 'Sessions', run: () => ran.push('new mini') },
    { id: 'attach:mini/agent', label: 'Attach to mini/agent', group: 'Sessions', run: () => ran.push('attach') },
    { id: 'add-host', label: 'Add host…', group: 'Hosts', run: () => ran.push('add') },
    { id: 'theme', label: 'Toggle theme', group: 'Settings', run: () => ran.push('theme') },
  ];
}

const labels = () => screen.queryAllByRole('option').map((o) => o.textContent);

function type(text: string) {
  act(() => {
    fireEvent.change(screen.getByLabelText('Search actions'), { target: { value: text } });
  });
}

describe('command palette', () => {
  it('typing narrows the list to matching actions', () => {
    render(<CommandPalette onClose={() => {}} actions={actions([])} />);
    expect(labels()).toHaveLength(4);
    type('theme');
    expect(labels()).toEqual(['Toggle theme']);
    type('zzzz');
    expect(labels()).toEqual([]);
    expect(screen.getByText(/No matching action/)).toBeTruthy();
  });

  it('the group holding the best match comes first (a long label that merely holds t-h-e-m-e does not beat "Toggle theme")', () => {
    const scattered: PaletteAction = {
      id: 'preview:mini:40863',
      label: 'Add preview mini:40863 (node /tmp/hangar-bench-x/dist/host-agent/src/main.js --home /tmp/e)',
      group: 'Previews',
      run: () => {},
    };
    render(<CommandPalette onClose={() => {}} actions={[scattered, ...actions([])]} />);
    type('theme');
    expect(labels()[0]).toBe('Toggle theme');
    type('the');
    expect(labels()[0]).toBe('Toggle theme');
  });

  it('Enter runs the highlighted action and closes the palette', () => {
    const ran: string[] = [];
    const onClose = vi.fn();
    render(<CommandPalette onClose={onClose} actions={actions(ran)} />);
    type('attach');
    fireEvent.keyDown(screen.getByLabelText('Search actions'), { key: 'Enter' });
    expect(ran).toEqual(['attach']);
    expect(onClose).toHaveBeenCalled();
  });

  it('Escape closes without running anything', () => {
    const ran: string[] = [];
    const onClose = vi.fn();
    render(<CommandPalette onClose={onClose} actions={actions(ran)} />);
    fireEvent.keyDown(screen.getByLabelText('Search actions'), { key: 'Escape' });
    expect(onClose).toHaveBeenCalled();
    expect(ran).toEqual([]);
  });

  it('recently used actions come first, before and while typing', () => {
    const ran: string[] = [];
    const first = render(<CommandPalette onClose={() => {}} actions={actions(ran)} />);
    type('toggle');
    fireEvent.keyDown(screen.getByLabelText('Search actions'), { key: 'Enter' });
    first.unmount();

    render(<CommandPalette onClose={() => {}} actions={actions(ran)} />);
    expect(labels()[0]).toBe('Toggle theme');
    expect(screen.getByText('Recent')).toBeTruthy();
    // "e" matches everything; the recent one still leads.
    type('e');
    expect(labels()[0]).toBe('Toggle theme');
    fireEvent.keyDown(screen.getByLabelText('Search actions'), { key: 'Enter' });
    expect(ran).toEqual(['theme', 'theme']);
  });

  it('offers to run what was typed on each host', () => {
    const ran: string[] = [];
    const typed = (search: string): PaletteAction[] =>
      ['mini', 'vps'].map((host) => ({
        id: `run:${host}:${search}`,
        label: `Run on ${host}: ${search}`,
        group: 'Run',
        keywords: [search],
        run: () => ran.push(`${host} ${search}`),
      }));
    render(<CommandPalette onClose={() => {}} actions={actions(ran)} typedActions={typed} />);
    type('make test');
    expect(labels()).toEqual(['Run on mini: make test', 'Run on vps: make test']);
    fireEvent.keyDown(screen.getByLabelText('Search actions'), { key: 'ArrowDown' });
    fireEvent.keyDown(screen.getByLabelText('Search actions'), { key: 'Enter' });
    expect(ran).toEqual(['vps make test']);
  });

  it('what was typed, offered to run, comes after the actions that match it', () => {
    const typed = (search: string): PaletteAction[] => [
      { id: `run:mini:${search}`, label: `Run on mini: ${search}`, group: 'Run', keywords: [search], run: () => {} },
    ];
    render(<CommandPalette onClose={() => {}} actions={actions([])} typedActions={typed} />);
    type('new session mini');
    expect(labels()).toEqual(['New session on mini', 'Run on mini: new session mini']);
  });
});
