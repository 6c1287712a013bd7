import { openCoreApi } from '@hangar/desktop/core';
import type { CoreApiClient } from '@hangar/shared';
import { reportError } from './exit-codes.js';

/**
 * The hangar command's door onto the core API: a core of its own, in this process, behind the
 * same procedures the window uses. Reaching an already running core instead (issue 18: a local
 * socket, falling back to this) changes only this line.
 */
export const openDoor = (): Promise<CoreApiClient> => openCoreApi();

/** Runs one command against the core API, then closes it and sets the exit status. */
export async function withApi(body: (api: CoreApiClient) => Promise<void | number>): Promise<void> {
  let api: CoreApiClient | undefined;
  let status = 0;
  try {
    api = await openDoor();
    const result = await body(api);
    if (typeof result === 'number') status = result;
  } catch (error) {
    status = reportError(error);
  } finally {
    await api?.dispose();
  }
  process.exitCode = status;
}
