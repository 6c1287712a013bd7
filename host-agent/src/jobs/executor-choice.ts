import { HangarError, type Disposable } from '@hangar/shared';
import type { Executor } from './executors/types.js';

/** Executors tried in this order when a job names none: the most isolated one that works here. */
const DEFAULT_EXECUTOR_ORDER = ['tart', 'sandbox', 'shell'] as const;
/** How long an executor's availability check is trusted (it may spawn a process). */
const AVAILABILITY_TTL_MS = 10_000;

/** The agent's executors by name, and which one a job gets: the one it names, or the best that works here. */
export class ExecutorChoice implements Disposable {
  private readonly byName = new Map<string, Executor>();
  private readonly availability = new Map<string, { at: number; reason: string | undefined }>();

  /** Owned from here on (disposed with this). */
  constructor(executors: readonly Executor[]) {
    for (const executor of executors) this.byName.set(executor.name, executor);
  }

  get(name: string): Executor | undefined {
    return this.byName.get(name);
  }

  /** For recovery: every executor by name. */
  get all(): ReadonlyMap<string, Executor> {
    return this.byName;
  }

  /** The executor for a job, or E_EXECUTOR_UNAVAILABLE with each candidate's reason. */
  async choose(requested: string | undefined): Promise<Executor> {
    const names = requested !== undefined ? [requested] : DEFAULT_EXECUTOR_ORDER;
    const reasons: string[] = [];
    for (const name of names) {
      const executor = this.byName.get(name);
      if (!executor) {
        reasons.push(`${name}: not available in this agent`);
        continue;
      }
      const reason = await this.unavailableReason(executor);
      if (reason === undefined) return executor;
      reasons.push(`${name}: ${reason}`);
    }
    throw new HangarError('E_EXECUTOR_UNAVAILABLE', `no executor can run this job here (${reasons.join('; ')})`);
  }

  async dispose(): Promise<void> {
    for (const executor of this.byName.values()) await executor.dispose();
  }

  private async unavailableReason(executor: Executor): Promise<string | undefined> {
    const cached = this.availability.get(executor.name);
    if (cached && Date.now() - cached.at < AVAILABILITY_TTL_MS) return cached.reason;
    const reason = await executor.unavailableReason();
    this.availability.set(executor.name, { at: Date.now(), reason });
    return reason;
  }
}
