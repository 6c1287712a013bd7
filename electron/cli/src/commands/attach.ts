import {
  decodeReason,
  HangarError,
  keyTrace,
  TERMINAL_CLOSE,
  toHangarError,
  type CloseReason,
  type CoreApi,
  type TerminalHandle,
  type TerminalSink,
} from '@hangar/shared';
import type { DirectTerminal, InProcessCoreApi, OpenedLane, TerminalLane } from '@hangar/desktop/core';
import type { Command } from 'commander';
import stringWidth from 'string-width';
import { constants } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import { visibleText } from '../output.js';
import { openOwnCore, viaRunningCore, withApi } from '../run.js';

export const DEFAULT_DETACH_KEY = 'ctrl-]';
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
      withApi((api) => attachSession(api, host, session, options.detachKey)),
    );
}

/** `hangar attach` (and `hangar task attach`): this terminal on the session until it ends or detaches; the exit status. */
export async function attachSession(api: CoreApi, host: string, session: string, detachKey: string): Promise<number> {
  const detachByte = parseDetachKey(detachKey);
  const size = terminalSize();
  const { end, signal } = await runAttached(api, { host, session, ...size }, detachByte, `${host}/${session}`);
  if (end.code === TERMINAL_CLOSE.ended) {
    const exitCode = end.exit_code ?? null;
    process.stderr.write(`[session ${session} ended${exitCode !== null ? ` with status ${exitCode}` : ''}]\n`);
    return exitCode ?? 0;
  }
  if (end.code === TERMINAL_CLOSE.detached) {
    process.stderr.write(
      `[detached from ${host}/${session}${signal ? ` (${signal})` : ''}; it keeps running — reattach with: hangar attach ${host} ${session}]\n`,
    );
    // Killed by a signal, as a shell counts it.
    return signal ? 128 + (constants.signals[signal] ?? 0) : 0;
  }
  process.stderr.write(`hangar: ${visibleText(end.message)}\n`);
  return end.code === TERMINAL_CLOSE.killed ? 0 : 1;
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
 * The terminal moves onto the command's own link after a pause in typing this long, so that few
 * keys wait while it happens (none is lost either way: see takeOver).
 */
const HANDOVER_QUIET_MS = 100;

/** What a running core's terminal becomes once it moved onto a link of the command's own. */
interface OwnLink {
  api: InProcessCoreApi;
  terminal: ReturnType<InProcessCoreApi['openTerminal']>;
}

/**
 * Opens the session's terminal through the core (shared's CoreTerminal, as the window does; the
 * core's own terminal when the core runs in this process) and wires stdin/stdout to it until it
 * ends or the user presses the detach key. Rejects, with the terminal untouched, if it cannot be
 * opened.
 *
 * Through a running core (the app is open), the first screen comes that way, at once; then the
 * command opens a core of its own in this process (this user's state and device key, as without
 * the app), links to the host and resumes the same attachment there from the next byte it lacks:
 * the running core's terminal ends ('superseded'), and keystrokes and their echoes cross one link
 * and no other process (issue 17). While the resume is under way, output through the running core
 * is held and typed keys wait; the running core says where the attachment stands only once the
 * host has acknowledged every key it passed on, so that none is still on its way through it when
 * the host switches. If it fails, the terminal stays where it was, with what was held; a later step
 * that throws ends the attach with the terminal given back (moveFailed). HANGAR_ATTACH_HANDOVER=off
 * keeps it on the running core.
 */
async function runAttached(
  api: CoreApi,
  target: { host: string; session: string; cols: number; rows: number },
  detachByte: number,
  label: string,
): Promise<{ end: CloseReason; signal?: NodeJS.Signals }> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  const raw = stdin.isTTY === true;
  const handOver = viaRunningCore() && process.env['HANGAR_ATTACH_HANDOVER'] !== 'off';
  const lanesOff = process.env['HANGAR_LANES']?.trim().toLowerCase() === 'off';
  const lanes = raw && stdout.isTTY === true && !lanesOff;
  /** Where a lane would have been tried: HANGAR_DEBUG says why none is, as for every other reason. */
  const noLaneWanted = (): void => {
    if (lanesOff && raw && stdout.isTTY === true) {
      debugNotice('hangar: no lane (HANGAR_LANES=off); the terminal stays on the link');
    }
  };
  let own: OwnLink | undefined;
  /** SIGTERM or SIGINT came while attached: it detached (see onSignal). */
  let signal: NodeJS.Signals | undefined;
  const end = await new Promise<CloseReason>((resolve, reject) => {
    let overlay = false;
    /** A notice kept on the bottom row over fresh output until this time, then repainted away. */
    let noticeUntil = 0;
    let notice = '';
    let wired = false;
    let finished = false;
    /** Bytes of output read through the running core (the resume starts right after them). */
    let doorRead = 0;
    /** While the handover is under way: the running core's output held, and the keys typed. */
    let holding: { output: { data: Uint8Array; done: () => void }[]; input: Uint8Array[] } | undefined;
    /** The terminal moved onto the command's own link: the running core's end of it is ignored. */
    let moved = false;
    let detachAfterHandover = false;
    let lastKeyAt = 0;
    /** The command's own terminal, while its keys still pass here (not on a lane). */
    let laneCandidate: DirectTerminal | undefined;
    let laneTimer: NodeJS.Timeout | undefined;
    /**
     * The attachment's output went over a lane since it attached: the host kept none of it for
     * replay, so a resume after the link dropped is refused whatever the replay window.
     */
    let lanedOutput = false;
    /** Undoes stderrAsNotices once the terminal is the user's again. */
    let stderrBack: (() => void) | undefined;
    const onInput = (chunk: Buffer) => {
      keyTrace?.('stdin', chunk.length);
      // Only a move to the command's own link still to come needs the time (a clock read per key).
      if (handOver && !moved) lastKeyAt = performance.now();
      // The move onto a lane comes in a pause in typing, once this client typed (and so drives
      // the session's size, as the host requires: see moveToLane).
      if (laneCandidate) {
        clearTimeout(laneTimer);
        laneTimer = setTimeout(() => void moveToLane(), HANDOVER_QUIET_MS);
      }
      const at = indexOfByte(chunk, detachByte);
      const keys = at >= 0 ? chunk.subarray(0, at) : chunk;
      if (holding) {
        if (keys.length > 0) holding.input.push(keys);
        if (at >= 0) detachAfterHandover = true;
        return;
      }
      if (keys.length > 0) current.write(keys);
      if (at >= 0) current.detach();
    };
    // Input that is no terminal (a pipe, a file, < /dev/null) is typed as it comes, and its end
    // detaches at once: the session keeps running (an EOF typed into it would end its shell), and
    // the command ends instead of waiting for keys that never come. Unlike ssh, which waits for the
    // remote end to close, nothing waits for what those keys cause (a session has no end to wait
    // for): their output comes after the detach and is not shown (README says so).
    const onInputEnd = () => {
      if (holding) detachAfterHandover = true;
      else current.detach();
    };
    // SIGTERM or SIGINT (kill, or Ctrl-C when the keys are no terminal's) detaches as the detach
    // key does: the screen and stderr's lines are given back and the host lets the attachment go
    // at once. Once: a second one, should the detach not come (the link down), ends the process.
    const onSignal = (received: NodeJS.Signals) => {
      signal = received;
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      onInputEnd();
    };
    let givenBack = false;
    /**
     * The terminal the user's again: cooked, off the alternate screen, the cursor shown, stderr
     * put back (its lines written). Also before Node prints an uncaught exception (a crash while
     * attached): else the error landed on the session's screen and the terminal stayed on it; and
     * at a process.exit() while attached (a terminal's writes are synchronous: they still go out).
     */
    const giveBack = () => {
      if (givenBack) return;
      givenBack = true;
      process.off('uncaughtExceptionMonitor', giveBack);
      process.off('exit', giveBack);
      if (wired && raw) stdin.setRawMode(false);
      stdout.write('\x1b[?1049l\x1b[?25h\r');
      stderrBack?.();
    };
    const onResize = () => {
      const { cols, rows } = terminalSize();
      current.resize(cols, rows);
    };
    const sink = (throughCore: boolean): TerminalSink => ({
      write(data, done) {
        if (throughCore) {
          if (moved) return;
          if (holding) {
            holding.output.push({ data, done });
            return;
          }
          doorRead += data.length;
        }
        // Ack only once the bytes reached our terminal: a slow terminal slows the host, not our memory.
        keyTrace?.('output', data.length);
        stdout.write(data, done);
        keyTrace?.('stdout.written', data.length);
        if (noticeUntil !== 0) {
          if (noticeUntil > Date.now()) showOverlay(notice);
          else noticeUntil = 0;
        }
      },
      status(status) {
        if (throughCore && moved) return;
        if (status === 'reconnecting') {
          overlay = true;
          showOverlay(`hangar: link to ${label} lost — reconnecting…`);
        } else if (status === 'skipped') {
          // The fresh screen from tmux would paint over a one-off notice at once: keep it up a while.
          overlay = false;
          notice = lanedOutput
            ? 'hangar: link dropped while on a lane (no replay): output meanwhile not shown'
            : 'hangar: output while you were away was skipped (replay window passed); this is the current screen';
          lanedOutput = false;
          noticeUntil = Date.now() + NOTICE_MS;
          showOverlay(notice);
          setTimeout(() => current.redraw(), NOTICE_MS).unref();
        } else if (status === 'attached') {
          // Afresh (after a lane broke, or after 'skipped'): no output of this attachment went by lane yet.
          lanedOutput = false;
        } else if (status === 'resumed' && overlay) {
          overlay = false;
          current.redraw();
        }
      },
      ended(end) {
        // The running core's terminal ends 'superseded' once the host has moved it to our link.
        if (throughCore && (moved || (holding && end.code === 'superseded'))) return;
        finish(end);
      },
    });
    /** The attachment is over: stdin unwired, the terminal the user's again, `end` the answer. */
    const finish = (end: CloseReason): void => {
      if (finished) return;
      finished = true;
      laneCandidate = undefined;
      clearTimeout(laneTimer);
      if (wired) {
        stdin.off('data', onInput);
        stdin.off('end', onInputEnd);
        process.off('SIGWINCH', onResize);
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        stdin.pause();
      }
      giveBack();
      resolve(end);
    };
    let current: TerminalHandle = api.openTerminal(target, sink(true));
    const door = current;

    /** JavaScript reads stdin again after a lane's relay read it (see stopReading). */
    const resumeInput = () => {
      if (!finished) startReading(stdin);
    };

    /** Relays a lane the host accepted between this terminal and the lane, natively (see above). */
    const startLane = (
      native: NativeRelays,
      terminal: DirectTerminal,
      lane: OpenedLane,
      held: Uint8Array[],
    ): TerminalLane => {
      stopReading(stdin);
      let relay: ReturnType<NativeRelays['relay']>;
      try {
        const net = native.adoptSocket(lane.socket);
        const fromNet = net.pending.length > 0 ? Buffer.concat([lane.leftover, net.pending]) : lane.leftover;
        relay = native.relay({
          net: net.fd,
          localRead: 0,
          localWrite: 1,
          closeLocal: false,
          keys: lane.keys,
          sendSeq: lane.sendSeq,
          receiveSeq: lane.receiveSeq,
          ...(fromNet.length > 0 ? { fromNet } : {}),
          ...(held.length > 0 ? { toNet: Buffer.concat(held) } : {}),
          // The stream's last output goes to stdout first (streamDone).
          holdNet: true,
          detachByte,
          onDetach: () => terminal.detach(),
          localKind: 'terminal',
        });
      } catch (error) {
        lane.socket.destroy();
        resumeInput();
        throw error;
      }
      lanedOutput = true;
      return {
        write: (data) => relay.write(data),
        // Behind what the stream's output wrote to stdout (written in order, callbacks in order).
        // Said here, after the stream's last output and before the relay's first: the relay writes
        // fd 1 from a thread of its own, and a notice written beside it could land inside one of
        // tmux's escape sequences.
        streamDone: () => {
          debugNotice('hangar: keys and output go over a lane beside the link');
          stdout.write('', () => relay.release('net'));
        },
        close: () => relay.close(),
        ended: relay.ended.then((end) => {
          const reason = end.how === 'closed' ? decodeReason(end.reason.toString('utf8'), 0) : undefined;
          // Unless the terminal ended, it goes back to the link (TerminalClient): JavaScript reads
          // the keys again, and the next pause in typing may find a lane again.
          if (!finished && !(reason && SESSION_ENDS.has(reason.code))) {
            resumeInput();
            laneCandidate = terminal;
          }
          if (reason) return { reason };
          return { broke: end.how === 'error' ? end.message : end.how };
        }),
      };
    };

    /**
     * Moves the terminal's keys and output onto a lane, if one can be had (see above); tried again
     * in the next pause in typing if not (the host takes only the client that typed last, which
     * drives the size), and after a lane that ended without the terminal.
     */
    const moveToLane = async (): Promise<void> => {
      const terminal = laneCandidate;
      if (!terminal || finished) return;
      const { lanesHere } = await import('@hangar/desktop/core');
      const native = lanesHere();
      if ('unavailable' in native) {
        laneCandidate = undefined;
        debugNotice(`hangar: no lane (${native.unavailable}); the terminal stays on the link`);
        return;
      }
      laneCandidate = undefined;
      try {
        // On a lane, streamDone says so.
        if (!(await terminal.toLane((opened, held) => startLane(native, terminal, opened, held))) && !finished)
          laneCandidate = terminal;
      } catch (error) {
        if (!finished) laneCandidate = terminal;
        debugNotice(`hangar: no lane; the terminal stays on the link: ${String(error)}`);
      }
    };

    /** Moves the terminal onto a link of the command's own (see above); if that fails it stays. */
    const moveToOwnLink = async (terminalId: string): Promise<void> => {
      let ownApi: InProcessCoreApi;
      try {
        ownApi = await openOwnCore();
      } catch (error) {
        // No core of its own (its state or device key unreadable now): the move is off, as when it fails.
        debugNotice(`hangar: the terminal stays on the running core: ${String(error)}`);
        return;
      }
      try {
        await moveOnto(ownApi, terminalId);
      } catch (error) {
        // Not moved: the core of its own goes (moved, it goes when the terminal ends, below).
        if (own?.api !== ownApi) {
          await ownApi.dispose().catch((disposing: unknown) => debugNotice(`hangar: ${String(disposing)}`));
        }
        throw error;
      }
    };

    /**
     * A step of the move failed past the point where the terminal could stay as it was (a step
     * that throws, not the own terminal refusing to open: that one stays): where keys and output
     * stand is not known, so the terminal is given back with what happened and how to come back,
     * rather than left half moved or ended by an unhandled rejection.
     */
    const moveFailed = (error: unknown): void => {
      const message = visibleText(toHangarError(error).message);
      if (finished) {
        debugNotice(`hangar: the move onto this command's own link failed after the terminal ended: ${message}`);
        return;
      }
      holding = undefined;
      current.detach();
      if (current !== door) door.detach();
      finish({
        code: TERMINAL_CLOSE.error,
        message:
          `moving the terminal onto this command's own link to the host failed (${message}); ` +
          `the session keeps running: hangar attach ${target.host} ${target.session}`,
      });
    };

    const moveOnto = async (ownApi: InProcessCoreApi, terminalId: string): Promise<void> => {
      const takeOver = async () => {
        // Move in a pause in typing, so that few keys wait while it happens.
        for (;;) {
          const wait = lastKeyAt + HANDOVER_QUIET_MS - performance.now();
          if (wait <= 0) break;
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
        if (finished) throw new HangarError('E_BAD_REQUEST', 'the terminal ended');
        // Its link down, the running core would resume the attachment when it is back, taking it
        // from us again: the terminal stays there.
        if (overlay) throw new HangarError('E_UNAVAILABLE', 'the running core is reconnecting');
        // From here keys wait here. The running core answers once the host has acknowledged every
        // key it passed on (the door delivers in order, so that is every key sent before this
        // call): none is still on its way when the host switches to our link.
        holding = { output: [], input: [] };
        const where = await api.call('terminal.attachment', { terminal_id: terminalId });
        return { attachmentId: where.attachment_id, offset: where.offset + doorRead };
      };
      const size = terminalSize();
      const terminal = ownApi.openTerminal({ ...target, ...size }, sink(false), takeOver);
      try {
        await terminal.opened;
      } catch (error) {
        debugNotice(`hangar: the terminal stays on the running core: ${String(error)}`);
        const held = holding;
        holding = undefined;
        for (const { data, done } of held?.output ?? []) sink(true).write(data, done);
        for (const keys of held?.input ?? []) door.write(keys);
        if (detachAfterHandover) door.detach();
        await ownApi.dispose();
        return;
      }
      const held = holding;
      holding = undefined;
      moved = true;
      own = { api: ownApi, terminal };
      current = terminal;
      debugNotice("hangar: the terminal moved onto this command's own link to the host");
      for (const keys of held?.input ?? []) terminal.write(keys);
      if (detachAfterHandover) terminal.detach();
      else if (lanes) laneCandidate = terminal;
      else noLaneWanted();
      // Nothing is said to the running core: the host has ended its stream ('superseded', and its
      // terminal with it). A terminal.close from here could reach it first and detach the
      // attachment that is now ours.
    };

    current.opened.then((terminalId) => {
      // A session that ended at once has already said so: nothing to wire.
      if (finished) return;
      wired = true;
      if (raw) stdin.setRawMode(true);
      stderrBack = stderrAsNotices();
      process.on('uncaughtExceptionMonitor', giveBack);
      process.on('exit', giveBack);
      stdin.on('data', onInput);
      if (!raw) stdin.once('end', onInputEnd);
      stdin.resume();
      process.on('SIGWINCH', onResize);
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      if (handOver) void moveToOwnLink(terminalId).catch(moveFailed);
      else if (isDirect(current)) {
        if (lanes) laneCandidate = current;
        else noLaneWanted();
      }
    }, reject);
  });
  if (own) {
    // The host answers the detach before the link goes (else it keeps the tmux client for its replay window).
    await own.terminal.detached();
    await own.api.dispose();
  }
  return signal ? { end, signal } : { end };
}

/** A lane's CLOSE reasons that end the terminal (any other sends it back to the link). */
const SESSION_ENDS = new Set<string>([TERMINAL_CLOSE.ended, TERMINAL_CLOSE.killed, TERMINAL_CLOSE.detached]);

type NativeRelays = Exclude<ReturnType<typeof import('@hangar/desktop/core').lanesHere>, { unavailable: string }>;

/** The terminal of the command's own core (not one through a running core's door): it can take a lane. */
function isDirect(terminal: TerminalHandle): terminal is DirectTerminal {
  return 'toLane' in terminal;
}

/**
 * Stops JavaScript reading `stdin` while a native relay reads fd 0. pause() alone leaves libuv
 * reading into the stream's buffer until it is full: keys the relay would never see, or would see
 * out of order. So the handle stops too (what net.Socket's own pause does when it reads into a
 * buffer of its own); startReading starts it again.
 */
function stopReading(stdin: NodeJS.ReadStream): void {
  stdin.pause();
  const handle = readHandle(stdin);
  if (handle?.reading) {
    handle.reading = false;
    handle.readStop();
  }
}

/**
 * Undoes stopReading. resume() alone does not restart the handle: the stream still counts the
 * read it asked for before the stop as under way, so it asks for none.
 */
function startReading(stdin: NodeJS.ReadStream): void {
  const handle = readHandle(stdin);
  if (handle && !handle.reading) {
    handle.reading = true;
    handle.readStart();
  }
  stdin.resume();
}

function readHandle(stdin: NodeJS.ReadStream) {
  return (stdin as unknown as { _handle?: { reading?: boolean; readStop(): number; readStart(): number } | null })
    ._handle;
}

/**
 * Where `byte` is in `chunk`, or -1. A keystroke is a byte or a few: a loop here, where Buffer's
 * indexOf is a call into C++ per key (a few µs after a pause, on a cold cache).
 */
function indexOfByte(chunk: Buffer, byte: number): number {
  if (chunk.length > 64) return chunk.indexOf(byte);
  for (let i = 0; i < chunk.length; i++) if (chunk[i] === byte) return i;
  return -1;
}

const debug = process.env['HANGAR_DEBUG'] !== undefined && process.env['HANGAR_DEBUG'] !== '';

/** A one-line notice on the bottom row that leaves the cursor where it was; tmux repaints over it. */
function showOverlay(text: string): void {
  process.stdout.write(overlay(text));
}

/**
 * The notice, cut to fit the row (its last column left free): past the last column of the bottom
 * row the terminal would wrap and scroll the whole screen up a row under tmux's feet.
 */
function overlay(text: string): string {
  const rows = process.stdout.rows || 24;
  const cols = process.stdout.columns || 80;
  return `\x1b7\x1b[${rows};1H\x1b[7m\x1b[2K${fitColumns(text, cols - 1)}\x1b[0m\x1b8`;
}

/**
 * `text` in at most `cols` columns, cut with … if longer: counted by string-width (East Asian Width:
 * a CJK character or an emoji takes two, a combining mark none), a grapheme at a time so that
 * nothing is cut in two. Only a head of the text is measured: Intl.Segmenter's iteration costs
 * time in the length of the whole string at each step (a 200,000-character line of U+200B, each a
 * grapheme of no column, held the command for minutes). A row takes at most HEAD_PER_COLUMN code
 * units a column; past that the text is cut, its last grapheme of the head (perhaps cut) left out.
 */
function fitColumns(text: string, cols: number): string {
  const whole = text.length <= cols * HEAD_PER_COLUMN;
  const head = whole ? text : text.slice(0, cols * HEAD_PER_COLUMN);
  let used = 0;
  let end = 0;
  /** Where the text would be cut for the … to fit too. */
  let cut = 0;
  for (const { segment, index } of graphemes.segment(head)) {
    // The head's last grapheme may go on past it: not measured, the text is cut before it.
    if (!whole && index + segment.length === head.length) break;
    const width = stringWidth(segment);
    if (used + width > cols) return `${text.slice(0, cut)}…`;
    used += width;
    end += segment.length;
    if (used <= cols - 1) cut = end;
  }
  return whole ? text : `${text.slice(0, cut)}…`;
}

/** Code units measured per column of the row (fitColumns): a family emoji takes 11 for its two. */
const HEAD_PER_COLUMN = 8;

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** stderr's own write while stderrAsNotices has put another in its place. */
let ownStderrWrite: typeof process.stderr.write | undefined;

function writeStderr(text: string): void {
  (ownStderrWrite ?? process.stderr.write).call(process.stderr, text);
}

/** At most this much of stderr's lines while attached is kept to be written after (a runaway logger). */
const KEPT_MAX = 64 * 1024;

/**
 * While the terminal is attached, the lines any other part of this process writes to stderr (a
 * HANGAR_DEBUG line of the app core's bundle, loaded only now for the move to the command's own
 * link: code-cache.ts; a warning of Node's) go on the bottom row as notices, when stdout and
 * stderr are terminals. Written as lines where the cursor is, they moved the cursor under tmux's feet: what
 * tmux drew next landed a row lower, and a command line typed across it came out split.
 * A notice is the first line of a write (Node writes a warning and its "(Use `node
 * --trace-warnings ...`" line in one), cut to the row, until tmux paints over it: so none is lost,
 * every line is kept and written as it came once the terminal is given back, a line still
 * unfinished then too (ended by a newline, before hangar's own last line). Returns that undo.
 */
function stderrAsNotices(): () => void {
  const stderr = process.stderr;
  // Output redirected, tmux draws on no terminal of ours: stderr's lines are the log.
  if (!stderr.isTTY || !process.stdout.isTTY) return () => undefined;
  const write = stderr.write;
  ownStderrWrite = write;
  // A character split across two writes of bytes comes whole.
  const decoder = new StringDecoder('utf8');
  let partial = '';
  let kept = '';
  let dropped = 0;
  /** A head of the line being written went through keep() already: what comes next continues it. */
  let midLine = false;
  /** That line, or a part of it, did not fit in what is kept: it is counted in `dropped` once it ends. */
  let lineDropped = false;
  /** A piece of a line, `ended` when it is the line's last: kept as it came, only a line's end gets a newline. */
  const keep = (piece: string, ended: boolean) => {
    if (!lineDropped && kept.length + piece.length < KEPT_MAX) kept += ended ? `${piece}\n` : piece;
    else if (!lineDropped) {
      lineDropped = true;
      // A head of it kept: what is kept next starts a line of its own.
      if (midLine) kept += '\n';
    }
    midLine = !ended;
    if (ended && lineDropped) {
      dropped++;
      lineDropped = false;
    }
  };
  stderr.write = ((
    chunk: string | Uint8Array,
    encoding?: BufferEncoding | ((error?: Error | null) => void),
    callback?: (error?: Error | null) => void,
  ): boolean => {
    const text =
      typeof chunk !== 'string'
        ? decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
        : typeof encoding === 'string' && !/^utf-?8$/i.test(encoding) && Buffer.isEncoding(encoding)
          ? Buffer.from(chunk, encoding).toString('utf8')
          : chunk;
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    const pieces = lines.map((line) => ({ piece: line, ended: true }));
    // A writer that never ends its line: past a quarter of what is kept, the unfinished part is
    // kept as it is (else each write joined and split it again, in time growing with its square:
    // keys held), not as a line: what comes next continues it.
    if (partial.length >= KEPT_MAX / 4) {
      pieces.push({ piece: partial, ended: false });
      partial = '';
    }
    let shown = false;
    for (const { piece, ended } of pieces) {
      // The rest of a line whose head was a notice already is none.
      const continues = midLine;
      keep(piece, ended);
      if (shown || continues) continue;
      const said = visibleText(piece.replace(/\r$/, ''));
      if (said.trim() !== '') {
        writeStderr(overlay(said));
        shown = true;
      }
    }
    const done = typeof encoding === 'function' ? encoding : callback;
    if (done) process.nextTick(done);
    return true;
  }) as typeof stderr.write;
  let undone = false;
  return () => {
    if (undone) return;
    undone = true;
    stderr.write = write;
    ownStderrWrite = undefined;
    // A line still unfinished (a head of it kept, perhaps) ends here, before hangar's own last line.
    const tail = partial + decoder.end();
    if (tail !== '' || midLine) keep(tail, true);
    if (dropped > 0)
      kept += `hangar: ${dropped === 1 ? '1 more line' : `${dropped} more lines`} written to stderr while attached ${dropped === 1 ? 'was' : 'were'} not kept\n`;
    if (kept !== '') write.call(stderr, kept);
  };
}

/**
 * A HANGAR_DEBUG notice while the terminal is up, as stderr's lines are (stderrAsNotices): its
 * control characters shown as escapes (visibleText: it may hold an error's text, a path, a host's
 * words), so none reaches the terminal and its columns are measured as they show; on the bottom
 * row when stdout and stderr are terminals. Written as a line where the cursor is, it moved the
 * cursor under tmux's feet, and what tmux drew next landed a row lower (a command line typed
 * across the move came out split, its tail on a row of its own like the echo's answer).
 * Redirected, it is a line of the log.
 */
function debugNotice(text: string): void {
  if (!debug) return;
  const said = visibleText(text);
  writeStderr(process.stderr.isTTY && process.stdout.isTTY ? overlay(said) : `${said}\n`);
}
