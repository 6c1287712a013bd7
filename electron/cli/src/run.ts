import { HangarCore } from '@hangar/desktop/core';
import { reportError } from './exit-codes.js';

/** Runs one command against the core, then closes it and sets the exit status. */
export async function withCore(body: (core: HangarCore) => Promise<void | number>): Promise<void> {
  let core: HangarCore | undefined;
  let status = 0;
  try {
    core = await HangarCore.open();
    const result = await body(core);
    if (typeof result === 'number') status = result;
  } catch (error) {
    status = reportError(error);
  } finally {
    await core?.dispose();
  }
  process.exitCode = status;
}
