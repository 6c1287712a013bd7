import { CoreTerminal, HangarError, keyTrace, TERMINAL_CLOSE, type CloseReason, type CoreApi } from '@hangar/shared';
import type { Command } from 'commander';
import { visibleText } from '../output.js';
import { withApi } from '../run.js';

const DEFAULT_DETACH_KEY = 'ctrl-]';
/** How long the "output skipped" notice stays on screen. */
const NOTICE_MS = 4000;

export function registerAttach(program: Command): void {
  program
    .command('attach')
    .description('attach this terminal to a session (full-screen programs work; resize follows the window)')
    .argument('<host>')
    .argument('<session>')
    .option(
      '--detach-key <key>',
      'key that detaches and leaves the session running: ctrl-<letter or ]\\^_>',
      DEFAULT_DETACH_KEY,
    )
    .action((host: string, session: string, options: { detachKey: string }) =>
      withApi(async (api) => {
        const detachByte = parseDetachKey(options.detachKey);
        const size = terminalSize();
        const end = await runAttached(api, { host, session, ...size }, detachByte, `${host}/${session}`);
        if (end.code === TERMINAL_CLOSE.ended) {
          const exitCode = end.exit_code ?? null;
          process.stderr.write(`[session ${session} ended${exitCode !== null ? ` with status ${exitCode}` : ''}]\n`);
          return exitCode ?? 0;
        }
        if (end.code === TERMINAL_CLOSE.detached) {
          process.stderr.write(
            `[detached from ${host}/${session}; it keeps running — reattach with: hangar attach ${host} ${session}]\n`,
          );
          return 0;
        }
        process.stderr.write(`hangar: ${visibleText(end.message)}\n`);
        return end.code === TERMINAL_CLOSE.killed ? 0 : 1;
      }),
    );
}

function terminalSize(): { cols: number; rows: number } {
  return { cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 };
}

function parseDetachKey(key: string): number {
  const match = /^ctrl-([a-z\]\\^_])$/i.exec(key);
  if (!match)
    throw new HangarError(
      'E_BAD_REQUEST',
      `--detach-key ${key}: expected ctrl-<letter> or ctrl-] / ctrl-\\ / ctrl-^ / ctrl-_`,
    );
  return match[1]!.toUpperCase().charCodeAt(0) & 0x1f;
}

/**
 * Opens the session's terminal through the core (shared's CoreTerminal, as the window does; the
 * core's own terminal when the core runs in this process) and wires stdin/stdout to it until it
 * ends or the user presses the detach key. Rejects, with the terminal untouched, if it cannot be
 * opened.
 */
function runAttached(
  api: CoreApi,
  target: { host: string; session: string; cols: number; rows: number },
  detachByte: number,
  label: string,
): Promise<CloseReason> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  const raw = stdin.isTTY === true;
  return new Promise<CloseReason>((resolve, reject) => {
    let overlay = false;
    /** A notice kept on the bottom row over fresh output until this time, then repainted away. */
    let noticeUntil = 0;
    let notice = '';
    let wired = false;
    let finished = false;
    const onInput = (chunk: Buffer) => {
      keyTrace?.('stdin', chunk.length);
      const at = chunk.indexOf(detachByte);
      if (at >= 0) {
        if (at > 0) terminal.write(chunk.subarray(0, at));
        terminal.detach();
        return;
      }
      terminal.write(chunk);
    };
    const onResize = () => {
      const { cols, rows } = terminalSize();
      terminal.resize(cols, rows);
    };
    const terminal = api.openTerminal(target, {
      write(data, done) {
        // Ack only once the bytes reached our terminal: a slow terminal slows the host, not our memory.
        keyTrace?.('output', data.length);
        stdout.write(data, done);
        keyTrace?.('stdout.written', data.length);
        if (noticeUntil > Date.now()) showOverlay(notice);
      },
      status(status) {
        if (status === 'reconnecting') {
          overlay = true;
          showOverlay(`hangar: link to ${label} lost — reconnecting…`);
        } else if (status === 'skipped') {
          // The fresh screen from tmux would paint over a one-off notice at once: keep it up a while.
          overlay = false;
          notice = 'hangar: output while you were away was skipped (replay window passed); this is the current screen';
          noticeUntil = Date.now() + NOTICE_MS;
          showOverlay(notice);
          setTimeout(() => terminal.redraw(), NOTICE_MS).unref();
        } else if (status === 'resumed' && overlay) {
          overlay = false;
          terminal.redraw();
        }
      },
      ended(end) {
        finished = true;
        if (wired) {
          stdin.off('data', onInput);
          process.off('SIGWINCH', onResize);
          if (raw) stdin.setRawMode(false);
          stdin.pause();
        }
        stdout.write('\x1b[?1049l\x1b[?25h\r');
        resolve(end);
      },
    });
    terminal.opened.then(() => {
      // A session that ended at once has already said so: nothing to wire.
      if (finished) return;
      wired = true;
      if (raw) stdin.setRawMode(true);
      stdin.on('data', onInput);
      stdin.resume();
      process.on('SIGWINCH', onResize);
    }, reject);
  });
}

/** A one-line notice on the bottom row that leaves the cursor where it was; tmux repaints over it. */
function showOverlay(text: string): void {
  const rows = process.stdout.rows || 24;
  process.stdout.write(`\x1b7\x1b[${rows};1H\x1b[7m\x1b[2K${text}\x1b[0m\x1b8`);
}
