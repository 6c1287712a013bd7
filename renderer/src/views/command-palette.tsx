import { Command, defaultFilter } from 'cmdk';
import { useMemo, useState } from 'react';
import { loadRecent, rememberRecent } from './recent-actions.js';

export interface PaletteAction {
  /** Stable across launches: what the recents list remembers. */
  id: string;
  /** What the user reads and what the fuzzy search matches. Unique within one list. */
  label: string;
  group: string;
  keywords?: string[];
  run(): void;
}

export interface CommandPaletteProps {
  onClose(): void;
  actions: PaletteAction[];
  /** Actions made of what the user typed, such as "Run on mini: make test". */
  typedActions?(search: string): PaletteAction[];
}

/** Non-recent matches score a little lower, so recent items come first among equals. */
const NOT_RECENT_WEIGHT = 0.9;

/** cmdk's fuzzy score, recent actions a little ahead. */
function paletteScore(label: string, query: string, keywords: string[] | undefined, recent: boolean): number {
  return defaultFilter(label, query, keywords) * (recent ? 1 : NOT_RECENT_WEIGHT);
}

/** Ctrl/Cmd+K: fuzzy search over every action; Enter runs the highlighted one, Escape closes. */
export function CommandPalette({ onClose, actions, typedActions }: CommandPaletteProps) {
  const [search, setSearch] = useState('');
  const [recent] = useState(loadRecent);
  const typed = useMemo(() => (search.trim() ? (typedActions?.(search.trim()) ?? []) : []), [search, typedActions]);
  const all = useMemo(() => {
    const labels = new Set(actions.map((a) => a.label));
    return [...actions, ...typed.filter((a) => !labels.has(a.label))];
  }, [actions, typed]);
  const recentActions = recent.map((id) => all.find((a) => a.id === id)).filter((a): a is PaletteAction => !!a);
  const recentIds = new Set(recentActions.map((a) => a.id));
  const recentLabels = new Set(recentActions.map((a) => a.label));
  const groups = new Map<string, PaletteAction[]>();
  for (const action of all) {
    if (recentIds.has(action.id)) continue;
    groups.set(action.group, [...(groups.get(action.group) ?? []), action]);
  }
  // cmdk orders the items of a group by score but not the groups themselves: while searching, the
  // group holding the best match comes first (Recent first among equals, then the usual order).
  // What was typed, offered to run, always holds the search word for word: it goes last.
  const typedIds = new Set(typed.map((a) => a.id));
  const best = (members: PaletteAction[]) =>
    members.every((a) => typedIds.has(a.id))
      ? -1
      : Math.max(...members.map((a) => paletteScore(a.label, search, a.keywords, recentIds.has(a.id))));
  const listed: [string, PaletteAction[]][] = [
    ...(recentActions.length > 0 ? [['Recent', recentActions] as [string, PaletteAction[]]] : []),
    ...groups,
  ];
  const rankedGroups = search.trim()
    ? listed
        .map((entry) => ({ entry, score: best(entry[1]) }))
        .sort((a, b) => b.score - a.score)
        .map(({ entry }) => entry)
    : listed;
  const run = (action: PaletteAction) => {
    rememberRecent(action.id);
    onClose();
    action.run();
  };
  const item = (action: PaletteAction) => (
    <Command.Item key={action.id} value={action.label} keywords={action.keywords} onSelect={() => run(action)}>
      {action.label}
    </Command.Item>
  );
  return (
    <div className="palette-backdrop" onMouseDown={(event) => event.target === event.currentTarget && onClose()}>
      <div className="palette" role="dialog" aria-modal="true" aria-label="Command palette">
        <Command
          label="Command palette"
          loop
          filter={(value, query, keywords) => paletteScore(value, query, keywords, recentLabels.has(value))}
          onKeyDown={(event) => {
            if (event.key === 'Escape') {
              event.preventDefault();
              onClose();
            }
          }}
        >
          <Command.Input
            autoFocus
            value={search}
            onValueChange={setSearch}
            placeholder="Type an action, a host, or a command to run…"
            aria-label="Search actions"
          />
          <Command.List>
            <Command.Empty>No matching action. Type a command to run it on a host.</Command.Empty>
            {rankedGroups.map(([group, members]) => (
              <Command.Group key={group} heading={group}>
                {members.map(item)}
              </Command.Group>
            ))}
          </Command.List>
        </Command>
      </div>
    </div>
  );
}
