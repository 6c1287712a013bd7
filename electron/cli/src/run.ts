import type { CoreApi } from '@hangar/shared';
import type { InProcessCoreApi } from '@hangar/desktop/core';

/**
 * Set by build/cli-bundle to the protocolFingerprint() of the tables this bundle holds; undefined
 * in the tsc build (then every answer of a running core is checked here, with the tables).
 */
declare const HANGAR_BUNDLED_PROTOCOL: string | undefined;
const bundledProtocol = typeof HANGAR_BUNDLED_PROTOCOL === 'string' ? HANGAR_BUNDLED_PROTOCOL : undefined;

const debug = process.env['HANGAR_DEBUG'] !== undefined && process.env['HANGAR_DEBUG'] !== '';

/** HANGAR_DEBUG: when each step of a command was reached, in ms since the process started (issue 18's hops). */
function timing(step: string): void {
  if (debug) process.stderr.write(`hangar: ${performance.now().toFixed(1)} ms: ${step}\n`);
}

/**
 * The hangar command's door onto the core API. When the app's core runs on this computer
 * (`npm start`, `hangar up`, `hangar ui`, the window), its local socket: the same procedures over
 * the host links it already holds. Otherwise (nothing there, a socket a stopped core left, or a
 * listener that is not a core: said on stderr) a core of its own, in this process. Both are
 * imported only here, when a command runs, so `hangar --help` loads neither. A running core of
 * this very build (the same protocol tables) is trusted to check calls and answers itself
 * (DoorClient), so the command loads no schema on the way: that is its fast path.
 */
export async function openDoor(): Promise<CoreApi> {
  timing('command loaded');
  if (process.env['HANGAR_LOCAL_DOOR'] !== 'off') {
    // The early reach is this command's first door; any later one reaches the core afresh.
    const pending = early ?? reach(false);
    early = undefined;
    const { door, running } = await holdingOn(pending);
    const { DoorClient } = door;
    timing('door answered');
    if (running.kind === 'core') {
      running.claim();
      // The command's goodbye (a close frame, then the socket's end) is with the kernel as soon as
      // nothing of it waits in this process: the process may exit then, and its exit ends the
      // socket as the shutdown would have. Waiting for the shutdown's own callback took another
      // turn of the event loop, often a wait for the CPU on a busy machine (issue 18). A socket
      // the core is slow to read (bytes still here) is waited for, to its end.
      doorWritten = () => (running.transport.bufferedAmount === 0 ? Promise.resolve() : running.written());
      const peer = `the Hangar core running on this computer (pid ${running.pid})`;
      const trusted = bundledProtocol !== undefined && running.protocol === bundledProtocol;
      if (debug)
        process.stderr.write(
          `hangar: using the Hangar core running on this computer (pid ${running.pid}, ${running.path}; ` +
            `${trusted ? 'same protocol tables: it checks calls and answers' : 'answers checked here'})\n`,
        );
      if (trusted) return new DoorClient(running.transport, { peer });
      const { CoreApiClient } = await import('@hangar/shared');
      return new CoreApiClient(running.transport, { peer });
    }
    if (running.kind === 'refused')
      process.stderr.write(`hangar: ${running.reason}; working without the running app\n`);
    else if (debug)
      process.stderr.write(`hangar: no Hangar core runs on this computer (${running.path}); using one of its own\n`);
  }
  const api = await openOwnCore();
  timing('own core opened');
  return api;
}

/**
 * A core of the command's own, in this process. Its log lines go through process.stderr.write, not
 * straight to fd 2 (the core's default, pino.destination(2)): so that `hangar attach` can put them
 * on the bottom row while the terminal is attached (attach.ts stderrAsNotices) instead of at
 * tmux's cursor, where a link drop's warnings split the screen.
 */
export async function openOwnCore(): Promise<InProcessCoreApi> {
  const { createCoreLogger, openCoreApi } = await import('@hangar/desktop/core');
  ownCoreOpened = true;
  return openCoreApi({ logger: createCoreLogger(undefined, { write: (line) => void process.stderr.write(line) }) });
}

/** Whether this process opened a core of its own (openOwnCore): it may hold WebRTC connections (endIfWebRtcHeld). */
let ownCoreOpened = false;

/** Set when the command's door is a running core's socket: resolves once all sent to it is out. */
let doorWritten: (() => Promise<void>) | undefined;

/** Whether the command's door is a running core's socket (not a core of its own). */
export function viaRunningCore(): boolean {
  return doorWritten !== undefined;
}

type DoorModule = typeof import('@hangar/desktop/core/door');
let early: Promise<{ door: DoorModule; running: Awaited<ReturnType<DoorModule['reachRunningCore']>> }> | undefined;

/** Commands that follow a job's log through the door: they read it in bigger pieces (ReachOptions.bulkReads). */
const FOLLOWS_LOGS = new Set(['logs', 'run']);

async function reach(isEarly: boolean) {
  const door = await import('@hangar/desktop/core/door');
  const bulkReads = FOLLOWS_LOGS.has(process.argv[2] ?? '');
  return { door, running: await door.reachRunningCore(door.hangarHome(), { early: isEarly, bulkReads }) };
}

/** An early reach's socket does not keep the process alive: until it is settled, this does. */
async function holdingOn<T>(pending: Promise<T>): Promise<T> {
  const alive = setInterval(() => undefined, 60_000);
  try {
    return await pending;
  } finally {
    clearInterval(alive);
  }
}

/**
 * Starts reaching the running core now, while the command's code loads and its arguments are
 * parsed (main.ts calls it for commands that go through openDoor): the socket's connect and the
 * core's greeting overlap that instead of following it (issue 18). Nothing is said or sent on the
 * core's behalf until openDoor takes it; unused, it does not keep the process alive.
 */
export function reachEarly(): void {
  if (process.env['HANGAR_LOCAL_DOOR'] === 'off' || early) return;
  early = reach(true);
  // Never used (a usage error): its failure is nobody's.
  early.catch(() => undefined);
}

/**
 * Runs one command against the core API, then closes it and sets the exit status. Through a
 * running core, the process ends as soon as its output and its goodbye to the core are with the
 * kernel (not waiting for the core's side of the close, nor for Node's own teardown of a finished
 * program: issue 18); the core takes a command's socket ending that way as a close. With a core
 * of its own, it ends as a Node program does.
 */
export async function withApi(body: (api: CoreApi) => Promise<void | number>): Promise<void> {
  let api: CoreApi | undefined;
  let status = 0;
  try {
    api = await openDoor();
    const result = await body(api);
    timing('answered');
    if (typeof result === 'number') status = result;
  } catch (error) {
    status = (await import('./exit-codes.js')).reportError(api && viaRunningCore() ? appGone(api, error) : error);
  } finally {
    await api?.dispose();
  }
  process.exitCode = status;
  if (doorWritten) {
    await Promise.all([doorWritten(), written(process.stdout), written(process.stderr)]);
    timing('output written');
    process.exit(status);
  }
  await endIfWebRtcHeld(status);
}

/**
 * Ends a command that opened a core of its own (openDoor, whatever it then did with it) here, with
 * `status`, once its output is out, when that core left a WebRTC connection stalled after ICE:
 * the library may be deadlocked (README "Known issues"), its threads keep the event loop alive
 * and Node's teardown would wait on them. Otherwise returns, and the command ends as a Node
 * program does. Every command that calls openDoor without withApi must call this at its end.
 */
export async function endIfWebRtcHeld(status: number): Promise<void> {
  if (!ownCoreOpened || !(await import('@hangar/desktop/core')).webRtcHoldsProcess()) return;
  await Promise.all([written(process.stdout), written(process.stderr)]);
  process.exit(status);
}

/**
 * A command whose running core stopped under it (the app was quit or killed) failed with whatever
 * that did to it, e.g. the door's bare "the local socket closed": say what happened and what to
 * do. What it asked of a host goes on there.
 */
function appGone(api: CoreApi, error: unknown): unknown {
  if (!api.closed || typeof error !== 'object' || error === null) return error;
  const said = 'message' in error && typeof error.message === 'string' ? ` (${error.message})` : '';
  return Object.assign(new Error(), {
    code: 'code' in error ? error.code : 'E_INTERNAL',
    message:
      `the Hangar app running on this computer stopped while this command ran${said}; ` +
      'what the command started on a host goes on there: run the command again (with no app running it works alone)',
  });
}

/**
 * Resolves once everything written to `stream` so far is with the OS: a pipe's writes are
 * asynchronous (POSIX), and process.exit() does not wait for them. An empty write's callback comes
 * after every earlier write's, or with the error that ended the stream (a reader that left).
 */
function written(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.writableLength === 0 || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => stream.write('', () => resolve()));
}
