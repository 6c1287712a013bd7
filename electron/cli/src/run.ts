import type { CoreApiClient } from '@hangar/shared';

/**
 * The hangar command's door onto the core API. When the app's core runs on this computer
 * (`npm start`, `hangar up`, `hangar ui`, the window), its local socket: the same procedures over
 * the host links it already holds. Otherwise (nothing there, a socket a stopped core left, or a
 * listener that is not a core: said on stderr) a core of its own, in this process. Both are
 * imported only here, when a command runs, so `hangar --help` loads neither.
 */
export async function openDoor(): Promise<CoreApiClient> {
  if (process.env['HANGAR_LOCAL_DOOR'] !== 'off') {
    const { reachRunningCore, hangarHome } = await import('@hangar/desktop/core/door');
    const running = await reachRunningCore(hangarHome());
    const debug = process.env['HANGAR_DEBUG'] !== undefined && process.env['HANGAR_DEBUG'] !== '';
    if (running.kind === 'core') {
      if (debug)
        process.stderr.write(
          `hangar: using the Hangar core running on this computer (pid ${running.pid}, ${running.path})\n`,
        );
      const { CoreApiClient } = await import('@hangar/shared');
      return new CoreApiClient(running.transport, {
        peer: `the Hangar core running on this computer (pid ${running.pid})`,
      });
    }
    if (running.kind === 'refused')
      process.stderr.write(`hangar: ${running.reason}; working without the running app\n`);
    else if (debug)
      process.stderr.write(`hangar: no Hangar core runs on this computer (${running.path}); using one of its own\n`);
  }
  const { openCoreApi } = await import('@hangar/desktop/core');
  return openCoreApi();
}

/** Runs one command against the core API, then closes it and sets the exit status. */
export async function withApi(body: (api: CoreApiClient) => Promise<void | number>): Promise<void> {
  let api: CoreApiClient | undefined;
  let status = 0;
  try {
    api = await openDoor();
    const result = await body(api);
    if (typeof result === 'number') status = result;
  } catch (error) {
    status = (await import('./exit-codes.js')).reportError(error);
  } finally {
    await api?.dispose();
  }
  process.exitCode = status;
}
