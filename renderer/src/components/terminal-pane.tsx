import { FitAddon } from '@xterm/addon-fit';
import { SearchAddon } from '@xterm/addon-search';
import { WebLinksAddon } from '@xterm/addon-web-links';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef, useState } from 'react';
import { describeError, openTerminal, type CoreApi, type TerminalStatus } from '../api/index.js';
import type { Theme } from '../views/theme.js';
import { TERMINAL_FONT, xtermTheme } from './xterm-theme.js';
import { SearchBar } from './search-bar.js';
import { HiddenOutput } from './hidden-output.js';
import { deferTextareaSync } from './xterm-textarea.js';

export interface TerminalPaneProps {
  api: CoreApi;
  host: string;
  session: string;
  theme: Theme;
  visible: boolean;
  /** Focus this pane's terminal when it becomes visible. */
  autoFocus: boolean;
}

/** How long the "output skipped" notice stays over the fresh redraw (as in the CLI). */
const SKIPPED_NOTICE_MS = 4000;
const RESIZE_DEBOUNCE_MS = 50;

/** Set by test/bench/ui before the page loads; tells when echoed bytes were parsed, apart from painted. */
declare global {
  interface Window {
    hangarBenchHooks?: { writeParsed(at: number): void };
  }
}

const isMac = typeof navigator !== 'undefined' && /Mac/.test(navigator.platform);

/** One xterm attached to host/session through the core; survives link drops in place. */
export function TerminalPane({ api, host, session, theme, visible, autoFocus }: TerminalPaneProps) {
  const container = useRef<HTMLDivElement>(null);
  const terminal = useRef<Terminal>(null);
  const fit = useRef<FitAddon>(null);
  const search = useRef<SearchAddon>(null);
  const output = useRef<HiddenOutput>(null);
  /** `visible` as of the last commit, for the output of a terminal (re)opened later. */
  const shown = useRef(visible);
  const [status, setStatus] = useState<TerminalStatus>('connecting');
  const [ended, setEnded] = useState<string>();
  const [skipped, setSkipped] = useState(false);
  const [searching, setSearching] = useState(false);

  useEffect(() => {
    const term = new Terminal({
      fontFamily: TERMINAL_FONT,
      fontSize: 13,
      cursorBlink: true,
      scrollback: 5000,
      theme: xtermTheme(theme),
    });
    const fitAddon = new FitAddon();
    const searchAddon = new SearchAddon();
    term.loadAddon(fitAddon);
    term.loadAddon(searchAddon);
    term.loadAddon(new WebLinksAddon((_event, uri) => window.open(uri, '_blank', 'noopener,noreferrer')));
    term.open(container.current!);
    // The message that brings an echo ends sooner, and its frame comes sooner (xterm-textarea.ts).
    deferTextareaSync(term);
    terminal.current = term;
    fit.current = fitAddon;
    search.current = searchAddon;
    safeFit(fitAddon);

    term.attachCustomKeyEventHandler((event) => {
      if (event.type !== 'keydown') return true;
      const mod = isMac ? event.metaKey : event.ctrlKey;
      const key = event.key.toLowerCase();
      // Ctrl/Cmd+K belongs to the window (command palette): let it bubble, do not send it.
      if (mod && !event.shiftKey && key === 'k') return false;
      if (mod && !event.shiftKey && key === 'f') {
        event.preventDefault();
        setSearching(true);
        return false;
      }
      if (event.ctrlKey && event.shiftKey && key === 'c') {
        if (term.hasSelection()) void navigator.clipboard?.writeText(term.getSelection());
        event.preventDefault();
        return false;
      }
      if (event.ctrlKey && event.shiftKey && key === 'v') {
        event.preventDefault();
        void navigator.clipboard?.readText().then((text) => term.paste(text));
        return false;
      }
      return true;
    });

    let disposed = false;
    let skippedTimer: ReturnType<typeof setTimeout> | undefined;
    // A hidden pane's output is parsed a little later, out of the way of the shown one's echo.
    const hiddenOutput = new HiddenOutput((data, done) => term.write(data, done), shown.current);
    output.current = hiddenOutput;
    // Usable at once: keys typed before it is open (right after the tab appears) are kept and sent.
    const connection = openTerminal(
      api,
      { host, session, cols: term.cols, rows: term.rows },
      {
        write: (data, done) => hiddenOutput.push(data, done),
        status(next) {
          setStatus(next);
          if (next === 'skipped') {
            setSkipped(true);
            clearTimeout(skippedTimer);
            skippedTimer = setTimeout(() => setSkipped(false), SKIPPED_NOTICE_MS);
          }
        },
        ended(reason) {
          if (disposed) return;
          if (reason.code === 'session_ended') setEnded(`The session ended (exit code ${reason.exit_code ?? '?'}).`);
          else if (reason.code === 'session_killed') setEnded('The session was killed.');
          else setEnded(`Disconnected: ${reason.message}`);
        },
      },
    );
    connection.opened.catch(
      (error: unknown) => !disposed && setEnded(`Could not open ${host}/${session}: ${describeError(error)}`),
    );
    const send = (data: string) => connection.input(data);
    const hooks = window.hangarBenchHooks;
    const parsed = hooks ? term.onWriteParsed(() => hooks.writeParsed(performance.now())) : undefined;
    const input = term.onData(send);
    const binary = term.onBinary(send);
    let resizeTimer: ReturnType<typeof setTimeout> | undefined;
    const resizeSubscription = term.onResize(({ cols, rows }) => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => connection.resize(cols, rows), RESIZE_DEBOUNCE_MS);
    });
    const observer = new ResizeObserver(() => safeFit(fitAddon));
    observer.observe(container.current!);
    return () => {
      disposed = true;
      hiddenOutput.dispose();
      observer.disconnect();
      clearTimeout(resizeTimer);
      clearTimeout(skippedTimer);
      parsed?.dispose();
      input.dispose();
      binary.dispose();
      resizeSubscription.dispose();
      connection.dispose();
      term.dispose();
    };
    // The theme is left out of the dependencies: its own effect applies it, and a theme change
    // must not reconnect.
  }, [api, host, session]);

  useEffect(() => {
    if (terminal.current) terminal.current.options.theme = xtermTheme(theme);
  }, [theme]);

  useEffect(() => {
    shown.current = visible;
    if (output.current) output.current.shown = visible;
    if (!visible || !fit.current) return;
    safeFit(fit.current);
    if (autoFocus) terminal.current?.focus();
  }, [visible, autoFocus]);

  const overlay =
    ended ?? (status === 'reconnecting' ? 'reconnecting…' : status === 'connecting' ? 'connecting…' : undefined);
  return (
    <section className="terminal-pane" aria-label={`Terminal ${host}/${session}`}>
      {searching && search.current && (
        <SearchBar
          search={search.current}
          onClose={() => {
            setSearching(false);
            terminal.current?.focus();
          }}
        />
      )}
      <div className="terminal-host" ref={container} />
      {overlay && (
        <div className={ended ? 'terminal-overlay terminal-ended' : 'terminal-overlay'} role="status">
          {overlay}
        </div>
      )}
      {skipped && (
        <div className="terminal-notice" role="status">
          output skipped: the link was down longer than the host keeps output; this is the current screen
        </div>
      )}
    </section>
  );
}

function safeFit(fitAddon: FitAddon): void {
  // A hidden pane measures 0×0; fitting it would shrink the remote tmux window to nothing.
  const dims = fitAddon.proposeDimensions();
  if (dims && dims.cols >= 2 && dims.rows >= 2) fitAddon.fit();
}
