import { HangarError, toHangarError } from '@hangar/shared';
import { onlineOnRelay, relayPresence } from '../install/enrollment.js';
import { currentLink, type InstallLayout, type InstallRecord } from '../install/layout.js';
import type { Runner } from '../install/plan.js';
import { serviceControl, type ServiceControl } from '../install/service-control.js';
import { readRunFile } from '../service/run-file.js';
import { waitForHealthy, type Healthy } from './health.js';
import { fetchVersion, latestVersion } from './package-source.js';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { switchSymlink } from '../install/plan.js';
import { linkedVersion, lockUpdates, makeCurrent, previousLink, pruneVersions, versionDir } from './versions.js';

export interface UpdateOptions {
  record: InstallRecord;
  layout: InstallLayout;
  run: Runner;
  uid: number;
  log: (line: string) => void;
  /** A version to go to; else the channel's newest. */
  version?: string;
  channel?: string;
  rollback?: boolean;
  /**
   * How long the version switched to has to answer (health.ts; default 30 s). A rollback after it
   * failed is given the default: the version that ran before is waited for as long as ever.
   */
  healthTimeoutMs?: number;
}

export type UpdateOutcome =
  | { kind: 'current'; version: string }
  | { kind: 'updated'; from: string | undefined; to: string; healthy: Healthy; downtimeMs: number };

/**
 * `hangar-agent update`: the new version is installed beside the running one, `current` is
 * switched to it, the service restarted, and the agent must answer (health.ts) within 30 s (or
 * `healthTimeoutMs`), and be online on its relay if it was before; if it does not, `current` goes
 * back to the version that ran before, which is restarted and checked the same way (within 30 s). tmux sessions are untouched throughout: they live in their own unit (systemd)
 * or outside the job's process group (launchd).
 */
export async function updateAgent(options: UpdateOptions): Promise<UpdateOutcome> {
  const { layout, record, run, log } = options;
  const lock = lockUpdates(layout);
  try {
    const from = linkedVersion(currentLink(layout));
    // Online on its relay now: then the new version (and a rollback) must be online there too.
    const relay = onlineOnRelay(record.data_dir);
    const previousBefore = linkedVersion(previousLink(layout));
    let to: string;
    if (options.rollback) {
      const previous = linkedVersion(previousLink(layout));
      if (!previous) throw new HangarError('E_NOT_FOUND', 'there is no previous version to roll back to');
      to = previous;
    } else {
      to = options.version ?? (await latestVersion(run, options.channel ?? record.channel, record.registry));
      if (to === from) {
        log(`hangar-agent ${to} is already the current version`);
        return { kind: 'current', version: to };
      }
      log(`fetching hangar-agent ${to}${record.registry ? ` from ${record.registry}` : ''}`);
      await fetchVersion(layout, run, to, record.registry);
    }
    log(`switching ${from ?? '(none)'} -> ${to} and restarting the agent (terminals keep running)`);
    const switched = await switchAndCheck(options, to, relay, options.healthTimeoutMs);
    if ('healthy' in switched) {
      if (!options.rollback) {
        const removed = pruneVersions(layout);
        if (removed.length > 0) log(`removed old versions: ${removed.join(', ')}`);
      }
      const where = switched.healthy.relay ? ` and is ${switched.healthy.relay}` : '';
      log(`hangar-agent ${to} answers (pid ${switched.healthy.run.pid})${where} after ${switched.downtimeMs} ms`);
      return { kind: 'updated', from, to, healthy: switched.healthy, downtimeMs: switched.downtimeMs };
    }
    if (!from) throw switched.failure;
    log(`hangar-agent ${to} did not come up: ${switched.failure.message}; putting ${from} back`);
    const back = await switchAndCheck(options, from, relay, undefined);
    if ('failure' in back) {
      throw new HangarError(
        'E_UNAVAILABLE',
        `the update to ${to} failed (${switched.failure.message}) and ${from} did not come back either ` +
          `(${back.failure.message}). See: hangar-agent logs`,
      );
    }
    // Back as before: `previous` names what it named, and the version that failed is not kept.
    if (previousBefore) switchSymlink(previousLink(layout), join('versions', previousBefore));
    else rmSync(previousLink(layout), { force: true });
    if (!options.rollback) rmSync(versionDir(layout, to), { recursive: true, force: true });
    throw new HangarError(
      'E_UNAVAILABLE',
      `the update to ${to} failed (${switched.failure.message}); rolled back to ${from}, which answers again. ` +
        'See what went wrong with: hangar-agent logs',
    );
  } finally {
    lock.release();
  }
}

async function switchAndCheck(
  options: UpdateOptions,
  version: string,
  relay: boolean,
  timeoutMs: number | undefined,
): Promise<{ healthy: Healthy; downtimeMs: number } | { failure: HangarError }> {
  const { layout, record } = options;
  const before = readRunFile(record.data_dir)?.pid;
  makeCurrent(layout, version);
  const started = Date.now();
  const control = serviceControl(layout, options.uid);
  try {
    await control.restart(options.run);
    const healthy = await waitForHealthy({
      dataDir: record.data_dir,
      version,
      ...(before !== undefined ? { notPid: before } : {}),
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(relay ? { relayPresence: (pid: number) => relayPresence(record.data_dir, pid) } : {}),
      serviceGaveUp: () => serviceGaveUp(control, options.run),
    });
    return { healthy, downtimeMs: Date.now() - started };
  } catch (error) {
    return { failure: toHangarError(error) };
  }
}

/** The service manager's verdict that the service will not come up by itself (systemd `failed`). */
export async function serviceGaveUp(control: ServiceControl, run: Runner): Promise<string | undefined> {
  const state = await control.state(run);
  return state.state.startsWith('failed') ? `the service manager reports ${state.state}` : undefined;
}
