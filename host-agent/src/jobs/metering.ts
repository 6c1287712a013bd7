/**
 * What the job service asks of billing (host-agent/src/billing): whether a build job may start
 * on this host, and a meter for each attempt. The service runs without one (tests, hosts that
 * never meet a relay); billing itself decides which hosts are metered.
 */
export interface JobMetering {
  /** Throws a HangarError (E_PLAN_LIMIT, saying what to do) when a build job may not start now. */
  admit(): void;
  /** An attempt started: undefined when it is not metered, else a meter to stop when it ends. */
  attemptStarted(f: { jobId: string; number: number; startedAt: number }): AttemptMeter | undefined;
}

export interface AttemptMeter {
  ended(at: number): void;
}
