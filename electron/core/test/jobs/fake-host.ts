import {
  ControlClient,
  ControlServer,
  Emitter,
  EventHub,
  HangarError,
  HOST_EVENTS,
  HOST_PROCEDURES,
  Mux,
  createMemoryTransportPair,
  type Disposable,
  type EventData,
  type EventInput,
  type HostEvent,
  type HostMethod,
  type HostParams,
  type HostResult,
  type JobInfo,
  type MemoryTransportPair,
  type ProcedureHandlers,
} from '@hangar/shared';
import type { JobLink } from '../../src/jobs/job-link.js';

type Handler = (params: any, agent: Mux) => unknown;

/** The job the fake hosts' tests follow. */
export const JOB = 'j-0123456789';

/** A `job.get` answer / `job.updated` job for JOB: `state` at `attempt`, one retry allowed. */
export function jobInfo(state: JobInfo['state'], attempt: number, exit: number | null = null): JobInfo {
  return {
    id: JOB,
    state,
    command: 'build',
    executor: 'shell',
    created_at: 1,
    finished_at: null,
    exit_code: exit,
    attempt,
    retries: 1,
    error: null,
    spec: { command: 'build' },
    attempts: [],
    artifacts: [],
  } as JobInfo;
}

/**
 * An agent's side of the link in memory, with handlers a test supplies per method, and a
 * client connection (the JobLink the jobs code uses) that reconnects to it after `cut()`.
 * Both ends are shared's ControlServer and ControlClient, as with a real agent; only what the
 * jobs client needs is answered. The real agent is exercised by test/e2e.
 */
export class FakeHost implements JobLink, Disposable {
  readonly host = { name: 'fake' };
  readonly handlers: Partial<Record<HostMethod, Handler>> = {};
  readonly calls: { method: string; params: any }[] = [];
  private pair: MemoryTransportPair | undefined;
  private client: ControlClient<typeof HOST_PROCEDURES, typeof HOST_EVENTS> | undefined;
  private server: ControlServer<typeof HOST_PROCEDURES, null, typeof HOST_EVENTS> | undefined;
  agent: Mux | undefined;
  private readonly events = new EventHub<typeof HOST_EVENTS>();
  private readonly linkEmitter = new Emitter<Mux>();
  /** A new link became the live one (after move(), as HostConnection's onLink). */
  readonly onLink = this.linkEmitter.event;
  private readonly linkLostEmitter = new Emitter<void>();
  /** The live link dropped (cut()), as HostConnection's onLinkLost. */
  readonly onLinkLost = this.linkLostEmitter.event;
  /** Links moved off by move(), still open until the test disposes the host. */
  readonly movedOff: Mux[] = [];
  /** While true, link() fails as if the host were unreachable. */
  down = false;
  links = 0;

  retain(): Disposable {
    return { dispose: () => undefined };
  }

  async link(): Promise<Mux> {
    if (this.client && !this.client.mux.closed) return this.client.mux;
    if (this.down) throw new HangarError('E_HOST_UNREACHABLE', 'fake host is down');
    this.links++;
    const pair = createMemoryTransportPair({ highWater: 64 * 1024 });
    const client = new Mux(pair[0], { role: 'client' });
    const agent = new Mux(pair[1], { role: 'agent' });
    this.pair = pair;
    this.agent = agent;
    this.client = new ControlClient(client, HOST_PROCEDURES, HOST_EVENTS, { peer: 'the fake host', hub: this.events });
    this.server = new ControlServer(agent, HOST_PROCEDURES, HOST_EVENTS, this.serving(agent), null);
    return client;
  }

  async call<M extends HostMethod>(method: M, params: HostParams<M>): Promise<HostResult<M>> {
    await this.link();
    return this.client!.call(method, params);
  }

  on<K extends HostEvent>(event: K, listener: (data: EventData<typeof HOST_EVENTS, K>) => void): Disposable {
    return this.events.on(event, listener);
  }

  /** Sends an event to the client, as the agent does for `job.updated`. */
  emit<K extends HostEvent>(event: K, data: EventInput<typeof HOST_EVENTS, K>): void {
    this.server?.publish(event, data);
  }

  /**
   * A better path: a new link becomes the live one and onLink fires, while the old one stays open
   * with its streams (HostConnection.moveTo); `movedOff` holds the old one's agent end.
   */
  async move(): Promise<Mux> {
    const old = this.client;
    this.client = undefined;
    if (this.agent) this.movedOff.push(this.agent);
    const mux = await this.link();
    this.retiredClients.push(old!);
    this.linkEmitter.fire(mux);
    return mux;
  }
  private readonly retiredClients: ControlClient<typeof HOST_PROCEDURES, typeof HOST_EVENTS>[] = [];

  /** The network drops: both ends see the link close at once. */
  cut(): void {
    this.pair?.cut();
    this.linkLostEmitter.fire();
  }

  /** A handler per method: the test's, or "no such call" (the fake answers only what a test set up). */
  private serving(agent: Mux): ProcedureHandlers<typeof HOST_PROCEDURES, null> {
    const table = {} as Record<HostMethod, (params: unknown) => Promise<{ result: unknown; after?: () => void }>>;
    for (const method of Object.keys(HOST_PROCEDURES) as HostMethod[]) {
      table[method] = async (params) => {
        this.calls.push({ method, params });
        const handler = this.handlers[method];
        if (!handler) throw new HangarError('E_UNAVAILABLE', `fake host has no ${method}`);
        // A handler returns a function to run after the answer went out (stream writes follow the answer).
        const outcome = (await handler(params, agent)) as { answer: unknown; after?: () => void } | undefined;
        return { result: outcome?.answer ?? {}, ...(outcome?.after ? { after: outcome.after } : {}) };
      };
    }
    return table as unknown as ProcedureHandlers<typeof HOST_PROCEDURES, null>;
  }

  dispose(): void {
    for (const old of this.retiredClients) old.mux.close();
    this.client?.mux.close();
    this.linkEmitter.dispose();
    this.linkLostEmitter.dispose();
    this.events.dispose();
  }
}
