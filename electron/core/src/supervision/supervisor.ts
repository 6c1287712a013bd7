import type { ChildProcess } from 'node:child_process';
import { Emitter, HangarError, toHangarError, type Disposable } from '@hangar/shared';
import {
  DEFAULT_RESTART_POLICY,
  RestartBudget,
  systemClock,
  type Clock,
  type RestartPolicy,
} from './restart-policy.js';

export interface Heartbeat<T> {
  /** Resolves when the child answers; a rejection, or no answer within timeoutMs, is a miss. */
  probe(ready: T): Promise<unknown>;
  intervalMs: number;
  timeoutMs: number;
  /** Misses in a row after which the child is taken for hung: SIGKILL, then a restart. */
  misses: number;
}

export interface SupervisorOptions<T> {
  /** The child in messages: "the embedded agent". */
  what: string;
  /** What the user should do when supervision gives up; ends the final error's message. */
  remedy: string;
  spawn(): ChildProcess;
  /** Resolves once the child serves (with its address, say). Its exit before then fails the start. */
  ready(child: ChildProcess): Promise<T>;
  heartbeat?: Heartbeat<T>;
  policy?: Partial<RestartPolicy>;
  /** On dispose: SIGTERM, then SIGKILL if the child is still there after this long. */
  stopGraceMs?: number;
  clock?: Clock;
  random?: () => number;
}

export interface SupervisedStart<T> {
  value: T;
  pid: number;
  /** Restarts so far in the current window (0 for the first start). */
  restarts: number;
}

export interface SupervisedRestart {
  /** What happened to the child, in words: "exited with status 1", "was killed by SIGKILL", … */
  reason: string;
  delayMs: number;
  /** This restart's number within the window, and the most allowed there. */
  count: number;
  maxRestarts: number;
  windowMs: number;
}

type State = 'idle' | 'starting' | 'running' | 'waiting' | 'restarting' | 'failed' | 'disposed';

/** One child process from spawn to exit. */
interface Run {
  child: ChildProcess;
  /** Resolves with what ended it, once it has exited (or could not be spawned). */
  ended: Promise<string>;
  readyAt: number | undefined;
  /** Set when the supervisor itself ends the child: why, for the messages. */
  killedFor: string | undefined;
  timer: unknown;
  misses: number;
}

/**
 * Keeps a child process running (VS Code's pty host is the model): a child that stops is started
 * again after an exponential, jittered backoff with a cap; more than policy.maxRestarts restarts
 * within policy.windowMs end supervision with a HangarError that says what to do (onFailed); a
 * child that ran for policy.stableMs starts a fresh count. With a heartbeat, a child that stops
 * answering (hung, not crashed) is killed and restarted like one that crashed. A failed first
 * start is not retried: start() rejects, since that is usually a setup problem to show at once.
 */
export class Supervisor<T> implements Disposable {
  private state: State = 'idle';
  private run: Run | undefined;
  private restartTimer: unknown;
  private readonly budget: RestartBudget;
  private readonly clock: Clock;
  private readonly startedEmitter = new Emitter<SupervisedStart<T>>();
  private readonly restartingEmitter = new Emitter<SupervisedRestart>();
  private readonly failedEmitter = new Emitter<HangarError>();
  /** The child is up and ready (after the first start and after every restart). */
  readonly onStarted = this.startedEmitter.event;
  /** The child stopped and will be started again after delayMs. */
  readonly onRestarting = this.restartingEmitter.event;
  /** Supervision gave up: the error says why and what to do. Nothing runs after this. */
  readonly onFailed = this.failedEmitter.event;

  constructor(private readonly options: SupervisorOptions<T>) {
    this.clock = options.clock ?? systemClock;
    this.budget = new RestartBudget({ ...DEFAULT_RESTART_POLICY, ...options.policy }, options.random);
  }

  /** The running child's pid, if one runs. */
  get pid(): number | undefined {
    return this.run?.child.pid;
  }

  /** Starts the child and resolves once it is ready; rejects if the first start fails. */
  async start(): Promise<T> {
    if (this.state !== 'idle') throw new HangarError('E_INTERNAL', `${this.options.what} was already started`);
    this.state = 'starting';
    try {
      return await this.launch();
    } catch (error) {
      if (this.state === 'starting') this.state = 'failed';
      throw error;
    }
  }

  private async launch(): Promise<T> {
    const child = this.options.spawn();
    const run: Run = {
      child,
      ended: exitOf(child),
      readyAt: undefined,
      killedFor: undefined,
      timer: undefined,
      misses: 0,
    };
    this.run = run;
    void run.ended.then((reason) => this.ended(run, run.killedFor ?? reason));
    try {
      const value = await Promise.race([
        this.options.ready(child),
        run.ended.then((reason) => {
          throw new HangarError('E_UNAVAILABLE', `${this.options.what} ${reason} before it was ready`);
        }),
      ]);
      if (this.run !== run || this.state === 'disposed')
        throw new HangarError('E_UNAVAILABLE', `${this.options.what} stopped`);
      run.readyAt = this.clock.now();
      this.state = 'running';
      this.heartbeat(run, value);
      this.startedEmitter.fire({ value, pid: child.pid!, restarts: this.budget.count(this.clock.now()) });
      return value;
    } catch (error) {
      // A child that is up but could not be made ready (pairing failed, say) is not left running.
      if (isRunning(child)) {
        run.killedFor ??= `did not become ready (${toHangarError(error).message})`;
        child.kill('SIGKILL');
      }
      throw error;
    }
  }

  /** Its child exited: restart it, or give up. */
  private ended(run: Run, reason: string): void {
    this.clock.clearTimeout(run.timer);
    if (this.run !== run) return;
    this.run = undefined;
    // The first start reports its own failure; after dispose nothing restarts.
    if (this.state !== 'running' && this.state !== 'restarting') return;
    const now = this.clock.now();
    const decision = this.budget.next(now, run.readyAt === undefined ? 0 : now - run.readyAt);
    const { maxRestarts, windowMs } = this.budget.policy;
    if (!decision.restart) {
      this.state = 'failed';
      this.failedEmitter.fire(
        new HangarError(
          'E_UNAVAILABLE',
          `${this.options.what} stopped ${decision.count + 1} times within ${duration(windowMs)} ` +
            `(the last time it ${reason}); it is not restarted again. ${this.options.remedy}`,
          { restarts: decision.count, window_ms: windowMs, last: reason },
        ),
      );
      return;
    }
    this.state = 'waiting';
    this.restartTimer = this.clock.setTimeout(() => {
      if (this.state !== 'waiting') return;
      this.state = 'restarting';
      // A restart that fails before it is ready ends in ended() again, which counts it.
      this.launch().catch(() => undefined);
    }, decision.delayMs);
    this.restartingEmitter.fire({ reason, delayMs: decision.delayMs, count: decision.count, maxRestarts, windowMs });
  }

  /** Probes the ready child every intervalMs (after the previous probe settled); kills it after `misses` misses in a row. */
  private heartbeat(run: Run, value: T): void {
    const beat = this.options.heartbeat;
    if (!beat) return;
    const schedule = () => (run.timer = this.clock.setTimeout(probe, beat.intervalMs));
    const probe = () => {
      if (this.run !== run) return;
      let settled = false;
      const settle = (answered: boolean, why: string) => {
        if (settled || this.run !== run) return;
        settled = true;
        this.clock.clearTimeout(run.timer);
        run.misses = answered ? 0 : run.misses + 1;
        if (run.misses < beat.misses) return void schedule();
        run.killedFor = `did not answer its heartbeat ${run.misses} times in a row (${why})`;
        run.child.kill('SIGKILL');
      };
      run.timer = this.clock.setTimeout(
        () => settle(false, `no answer within ${duration(beat.timeoutMs)}`),
        beat.timeoutMs,
      );
      beat.probe(value).then(
        () => settle(true, ''),
        (error: unknown) => settle(false, toHangarError(error).message),
      );
    };
    schedule();
  }

  async dispose(): Promise<void> {
    if (this.state === 'disposed') return;
    this.state = 'disposed';
    this.clock.clearTimeout(this.restartTimer);
    const run = this.run;
    if (run) {
      this.clock.clearTimeout(run.timer);
      if (isRunning(run.child)) {
        run.child.kill('SIGTERM');
        const forced = this.clock.setTimeout(() => run.child.kill('SIGKILL'), this.options.stopGraceMs ?? 5000);
        await run.ended;
        this.clock.clearTimeout(forced);
      }
    }
    this.startedEmitter.dispose();
    this.restartingEmitter.dispose();
    this.failedEmitter.dispose();
  }
}

function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Resolves once the child has exited, or could not be spawned at all, with what happened in words. */
function exitOf(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ? `was killed by ${signal}` : `exited with status ${code}`));
    // 'error' also reports a failed kill of a running child; only a spawn failure ends the run.
    child.on('error', (error) => {
      if (child.pid === undefined) resolve(`could not be started (${error.message})`);
    });
  });
}

function duration(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Math.round(ms / 100) / 10} s`;
}
