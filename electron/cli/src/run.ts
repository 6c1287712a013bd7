import type { CoreApi } from '@hangar/shared';

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
    const { reachRunningCore, hangarHome, DoorClient } = await import('@hangar/desktop/core/door');
    const running = await reachRunningCore(hangarHome());
    timing('door answered');
    if (running.kind === 'core') {
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
  const { openCoreApi } = await import('@hangar/desktop/core');
  const api = await openCoreApi();
  timing('own core opened');
  return api;
}

/** Runs one command against the core API, then closes it and sets the exit status. */
export async function withApi(body: (api: CoreApi) => Promise<void | number>): Promise<void> {
  let api: CoreApi | undefined;
  let status = 0;
  try {
    api = await openDoor();
    const result = await body(api);
    timing('answered');
    if (typeof result === 'number') status = result;
  } catch (error) {
    status = (await import('./exit-codes.js')).reportError(error);
  } finally {
    await api?.dispose();
  }
  process.exitCode = status;
}
