import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef, useState } from 'react';
import { describeError, followJobLog, type CoreApi } from '../api/index.js';
import type { Theme } from '../views/theme.js';
import { TERMINAL_FONT, xtermTheme } from './xterm-theme.js';

/** A job's log, live, with its ANSI colours: a read-only xterm is the renderer for that. */
export function JobLog({
  api,
  host,
  id,
  attempt,
  theme,
}: {
  api: CoreApi;
  host: string;
  id: string;
  attempt: number;
  theme: Theme;
}) {
  const container = useRef<HTMLDivElement>(null);
  const terminal = useRef<Terminal>(null);
  const [end, setEnd] = useState<string>();

  useEffect(() => {
    setEnd(undefined);
    const term = new Terminal({
      fontFamily: TERMINAL_FONT,
      fontSize: 12,
      disableStdin: true,
      cursorInactiveStyle: 'none',
      convertEol: true,
      scrollback: 100_000,
      theme: xtermTheme(theme),
    });
    const fitAddon = new FitAddon();
    term.loadAddon(fitAddon);
    term.open(container.current!);
    terminal.current = term;
    const fit = () => {
      const dims = fitAddon.proposeDimensions();
      if (dims && dims.cols >= 2 && dims.rows >= 2) fitAddon.fit();
    };
    fit();
    const observer = new ResizeObserver(fit);
    observer.observe(container.current!);
    let disposed = false;
    let follower: { dispose(): void } | undefined;
    followJobLog(
      api,
      { host, id },
      {
        write: (data, done) => term.write(data, done),
        ended: (reason) => {
          if (disposed) return;
          setEnd(reason.code === 'log_end' ? 'end of log' : `log stopped: ${reason.message}`);
        },
      },
    ).then(
      (opened) => {
        if (disposed) opened.dispose();
        else follower = opened;
      },
      (error: unknown) => !disposed && setEnd(`Could not read the log: ${describeError(error)}`),
    );
    return () => {
      disposed = true;
      observer.disconnect();
      follower?.dispose();
      term.dispose();
    };
    // The theme is left out of the dependencies: its own effect applies it, and a theme change
    // must not refetch the log.
  }, [api, host, id, attempt]);

  useEffect(() => {
    if (terminal.current) terminal.current.options.theme = xtermTheme(theme);
  }, [theme]);

  return (
    <section className="job-log" aria-label={`Log of ${id}`}>
      <div className="job-log-host" ref={container} />
      {end && <p className="job-log-end">{end}</p>}
    </section>
  );
}
