import type { CoreApi } from '../api/index.js';
import { TerminalPane } from '../components/terminal-pane.js';
import type { TerminalTabs } from './terminal-tabs-state.js';
import type { Theme } from './theme.js';

export interface TerminalsViewProps {
  api: CoreApi;
  tabs: TerminalTabs;
  theme: Theme;
  visible: boolean;
  onSplit(tabId: string): void;
  onRename(tabId: string): void;
}

/** Terminal tabs; every tab stays mounted so hidden terminals keep receiving output. */
export function TerminalsView({ api, tabs, theme, visible, onSplit, onRename }: TerminalsViewProps) {
  if (tabs.tabs.length === 0) {
    return (
      <div className="empty-state terminals-empty" hidden={!visible}>
        <p>No terminals open.</p>
        <p>
          Press <kbd>Ctrl</kbd>+<kbd>K</kbd> and choose “New session on …”, or pick a session in the host list.
        </p>
      </div>
    );
  }
  return (
    <div className="terminals" hidden={!visible}>
      <div className="tab-bar" role="tablist" aria-label="Terminal tabs">
        {tabs.tabs.map((tab) => (
          <div key={tab.id} className={tab.id === tabs.activeId ? 'tab tab-active' : 'tab'}>
            <button
              type="button"
              role="tab"
              id={`tab-${tab.id}`}
              aria-selected={tab.id === tabs.activeId}
              aria-controls={`panel-${tab.id}`}
              onClick={() => tabs.activate(tab.id)}
              onDoubleClick={() => onRename(tab.id)}
            >
              {tab.title}
            </button>
            <button
              type="button"
              className="tab-close"
              aria-label={`Close tab ${tab.title}`}
              onClick={() => tabs.close(tab.id)}
            >
              ×
            </button>
          </div>
        ))}
        <span className="tab-bar-spacer" />
        {tabs.activeId && (
          <>
            <button type="button" onClick={() => onSplit(tabs.activeId!)} aria-label="Split tab">
              Split
            </button>
            <button type="button" onClick={() => onRename(tabs.activeId!)} aria-label="Rename tab">
              Rename
            </button>
          </>
        )}
      </div>
      {tabs.tabs.map((tab) => (
        <div
          key={tab.id}
          id={`panel-${tab.id}`}
          role="tabpanel"
          aria-labelledby={`tab-${tab.id}`}
          className={tab.panes.length > 1 ? 'tab-panel split' : 'tab-panel'}
          hidden={tab.id !== tabs.activeId}
        >
          {tab.panes.map((pane, index) => (
            <TerminalPane
              key={`${pane.host}/${pane.session}`}
              api={api}
              host={pane.host}
              session={pane.session}
              theme={theme}
              visible={visible && tab.id === tabs.activeId}
              autoFocus={index === tab.panes.length - 1}
            />
          ))}
        </div>
      ))}
    </div>
  );
}
