import { toHangarError, visibleText, type HostUpdate } from '@hangar/shared';
import type { Logger } from 'pino';
import { resolve } from 'node:path';
import { currentEnvironment, findInstall } from '../install/layout.js';
import type { Runner } from '../install/plan.js';
import { AGENT_VERSION } from '../version.js';
import { latestVersion } from './package-source.js';

/** How often an installed agent asks its registry for the channel's version. */
export const UPDATE_CHECK_INTERVAL_MS = 6 * 60 * 60_000;

export interface UpdateCheckOptions {
  channel: string;
  registry?: string;
  run: Runner;
  logger: Logger;
  /** Called when what the check found changes (a newer version appeared, or went away). */
  onChange: (update: HostUpdate) => void;
  intervalMs?: number;
  current?: string;
}

/**
 * "Update available" for the app: an installed agent asks the registry it was installed from
 * (through npm, as `hangar-agent update` does) what its channel's version is, at start and every
 * six hours, and says so in its host info. It never updates itself: the user runs
 * `hangar-agent update` on the host, which health-checks and rolls back. An agent run by hand
 * (`hangar-agent serve`, not installed) has no channel to follow and does not check.
 */
export class UpdateCheck {
  private state: HostUpdate;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private disposed = false;

  constructor(private readonly options: UpdateCheckOptions) {
    this.state = {
      channel: options.channel,
      current: options.current ?? AGENT_VERSION,
      latest: null,
      available: false,
      checked_at: null,
      error: null,
    };
  }

  get current(): HostUpdate {
    return this.state;
  }

  start(): void {
    void this.check();
    this.timer = setInterval(() => void this.check(), this.options.intervalMs ?? UPDATE_CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  /** One check now (a check already under way is joined, not repeated). */
  check(): Promise<void> {
    this.running ??= this.ask().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async ask(): Promise<void> {
    const { channel, registry, run } = this.options;
    let next: HostUpdate;
    try {
      const latest = await latestVersion(run, channel, registry);
      next = {
        ...this.state,
        latest,
        // What `hangar-agent update` would do: go to the channel's version whenever it differs.
        available: latest !== this.state.current,
        checked_at: Date.now(),
        error: null,
      };
    } catch (error) {
      // Offline, or the registry is down: keep what was known, and say why the check failed.
      const message = visibleText(toHangarError(error).message).slice(0, 400);
      this.options.logger.info({ err: message }, 'could not check for an agent update');
      next = { ...this.state, checked_at: Date.now(), error: message };
    }
    if (this.disposed) return;
    const changed =
      next.latest !== this.state.latest || next.available !== this.state.available || next.error !== this.state.error;
    this.state = next;
    if (changed) this.options.onChange(next);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }
}

/**
 * The channel and registry to follow when this data dir is that of an installed service (its
 * install record names it); undefined for an agent run by hand, which has nothing to update.
 */
export function installedChannel(dataDir: string, logger: Logger): { channel: string; registry?: string } | undefined {
  try {
    const found = findInstall(currentEnvironment());
    if (!found || resolve(found.record.data_dir) !== resolve(dataDir)) return undefined;
    return { channel: found.record.channel, ...(found.record.registry ? { registry: found.record.registry } : {}) };
  } catch (error) {
    // An unsupported system or an unreadable record: no update check, and the reason in the log.
    logger.info({ err: toHangarError(error).message }, 'not checking for agent updates');
    return undefined;
  }
}
