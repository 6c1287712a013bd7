import type { SearchAddon } from '@xterm/addon-search';
import { useState } from 'react';

/** Ctrl/Cmd+F in a terminal: Enter finds the next match, Shift+Enter the previous, Escape closes. */
export function SearchBar({ search, onClose }: { search: SearchAddon; onClose(): void }) {
  const [query, setQuery] = useState('');
  return (
    <form
      className="terminal-search"
      role="search"
      onSubmit={(event) => {
        event.preventDefault();
        search.findNext(query);
      }}
    >
      <input
        autoFocus
        aria-label="Find in terminal"
        placeholder="Find"
        value={query}
        onChange={(event) => {
          setQuery(event.target.value);
          search.findNext(event.target.value, { incremental: true });
        }}
        onKeyDown={(event) => {
          if (event.key === 'Escape') {
            search.clearDecorations();
            onClose();
          } else if (event.key === 'Enter' && event.shiftKey) {
            event.preventDefault();
            search.findPrevious(query);
          }
        }}
      />
      <button type="button" onClick={() => search.findPrevious(query)} aria-label="Previous match">
        ↑
      </button>
      <button type="submit" aria-label="Next match">
        ↓
      </button>
      <button type="button" onClick={onClose} aria-label="Close search">
        ×
      </button>
    </form>
  );
}
