import { useCallback, useEffect, useState } from 'react';
import { z } from 'zod';

const PaneTarget = z.object({ host: z.string(), session: z.string() });
export type PaneTarget = z.infer<typeof PaneTarget>;

const TerminalTab = z.object({
  id: z.string(),
  title: z.string(),
  /** One pane, or two side by side after a split. */
  panes: z.array(PaneTarget),
});
export type TerminalTab = z.infer<typeof TerminalTab>;

const TABS_KEY = 'hangar.tabs';

/** What is remembered, read back with the same schema it was written with. */
const Saved = z.object({ tabs: z.array(TerminalTab), active: z.string().optional() });
type Saved = { tabs: TerminalTab[]; active: string | undefined };

/** Open tabs are remembered so a reload re-attaches to the same sessions (tmux redraws them). */
function load(): Saved {
  let json: unknown = null;
  try {
    json = JSON.parse(localStorage.getItem(TABS_KEY) ?? 'null');
  } catch {
    // A corrupt entry costs the remembered tabs, nothing else.
  }
  const saved = Saved.safeParse(json);
  return saved.success ? { tabs: saved.data.tabs, active: saved.data.active } : { tabs: [], active: undefined };
}

let counter = 0;
const newId = () => `t${Date.now().toString(36)}${(counter++).toString(36)}`;

export interface TerminalTabs {
  tabs: TerminalTab[];
  activeId: string | undefined;
  open(target: PaneTarget): void;
  split(tabId: string, target: PaneTarget): void;
  close(tabId: string): void;
  rename(tabId: string, title: string): void;
  activate(tabId: string): void;
}

export function useTerminalTabs(): TerminalTabs {
  const [state, setState] = useState<Saved>(load);
  useEffect(() => localStorage.setItem(TABS_KEY, JSON.stringify(state)), [state]);

  const open = useCallback((target: PaneTarget) => {
    setState((s) => {
      const existing = s.tabs.find((t) => t.panes.some((p) => p.host === target.host && p.session === target.session));
      if (existing) return { ...s, active: existing.id };
      const tab = { id: newId(), title: `${target.host}/${target.session}`, panes: [target] };
      return { tabs: [...s.tabs, tab], active: tab.id };
    });
  }, []);
  const split = useCallback((tabId: string, target: PaneTarget) => {
    setState((s) => ({
      ...s,
      tabs: s.tabs.map((t) => (t.id === tabId ? { ...t, panes: [t.panes[0]!, target] } : t)),
      active: tabId,
    }));
  }, []);
  const close = useCallback((tabId: string) => {
    setState((s) => {
      const index = s.tabs.findIndex((t) => t.id === tabId);
      const tabs = s.tabs.filter((t) => t.id !== tabId);
      const active = s.active === tabId ? tabs[Math.min(index, tabs.length - 1)]?.id : s.active;
      return { tabs, active };
    });
  }, []);
  const rename = useCallback((tabId: string, title: string) => {
    setState((s) => ({ ...s, tabs: s.tabs.map((t) => (t.id === tabId ? { ...t, title } : t)) }));
  }, []);
  const activate = useCallback((tabId: string) => setState((s) => ({ ...s, active: tabId })), []);
  return { tabs: state.tabs, activeId: state.active, open, split, close, rename, activate };
}
