import {
  Emitter,
  HangarError,
  HOST_PROCEDURES,
  Mux,
  createMemoryTransportPair,
  toHangarError,
  type Disposable,
  type HostMethod,
  type HostParams,
  type HostResult,
  type MemoryTransportPair,
} from '@hangar/shared';
import type { JobLink } from '../../src/jobs/job-link.js';

type Handler = (params: any, agent: Mux) => unknown;

/**
 * An agent's side of the link in memory, with handlers a test supplies per method, and a
 * client connection (the JobLink the jobs code uses) that reconnects to it after `cut()`.
 * Only what the jobs client needs; the real agent is exercised by test/e2e.
 */
export class FakeHost implements JobLink, Disposable {
  readonly host = { name: 'fake' };
  readonly handlers: Partial<Record<HostMethod, Handler>> = {};
  readonly calls: { method: string; params: any }[] = [];
  private pair: MemoryTransportPair | undefined;
  private client: Mux | undefined;
  agent: Mux | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  private readonly events = new Emitter<{ event: string; data: unknown }>();
  readonly onEvent = this.events.event;
  /** While true, link() fails as if the host were unreachable. */
  down = false;
  links = 0;

  retain(): Disposable {
    return { dispose: () => undefined };
  }

  async link(): Promise<Mux> {
    if (this.client && !this.client.closed) return this.client;
    if (this.down) throw new HangarError('E_HOST_UNREACHABLE', 'fake host is down');
    this.links++;
    const pair = createMemoryTransportPair({ highWater: 64 * 1024 });
    const client = new Mux(pair[0], { role: 'client' });
    const agent = new Mux(pair[1], { role: 'agent' });
    this.pair = pair;
    this.client = client;
    this.agent = agent;
    client.onControl((json) => {
      const message = JSON.parse(json);
      if (message.kind === 'event') return this.events.fire({ event: message.event, data: message.data });
      const waiting = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.ok) waiting?.resolve(message.result);
      else waiting?.reject(HangarError.from(message.error));
    });
    client.onClose((reason) => {
      for (const [id, waiting] of this.pending) {
        waiting.reject(new HangarError('E_UNAVAILABLE', `link dropped: ${reason.message}`));
        this.pending.delete(id);
      }
    });
    agent.onControl((json) => void this.serve(agent, JSON.parse(json)));
    return client;
  }

  async call<M extends HostMethod>(method: M, params: HostParams<M>): Promise<HostResult<M>> {
    const mux = await this.link();
    const id = this.nextId++;
    const raw = await new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      mux.sendControl(JSON.stringify({ schema_version: 1, kind: 'request', id, method, params }));
    });
    return HOST_PROCEDURES[method].result.parse(raw) as HostResult<M>;
  }

  /** Sends an event to the client, as the agent does for `job.updated`. */
  emit(event: string, data: unknown): void {
    this.agent?.sendControl(JSON.stringify({ schema_version: 1, kind: 'event', event, data }));
  }

  /** The network drops: both ends see the link close at once. */
  cut(): void {
    this.pair?.cut();
  }

  private async serve(agent: Mux, request: { id: number; method: HostMethod; params: unknown }): Promise<void> {
    const params = HOST_PROCEDURES[request.method].params.parse(request.params);
    this.calls.push({ method: request.method, params });
    const reply = (body: object) => {
      if (!agent.closed)
        agent.sendControl(JSON.stringify({ schema_version: 1, kind: 'response', id: request.id, ...body }));
    };
    try {
      const handler = this.handlers[request.method];
      if (!handler) throw new HangarError('E_UNAVAILABLE', `fake host has no ${request.method}`);
      // A handler returns a function to run after the answer went out (stream writes follow the answer).
      const result = (await handler(params, agent)) as { answer: unknown; after?: () => void } | undefined;
      reply({ ok: true, result: result?.answer ?? {} });
      result?.after?.();
    } catch (error) {
      reply({ ok: false, error: toHangarError(error).toJSON() });
    }
  }

  dispose(): void {
    this.client?.close();
    this.events.dispose();
  }
}
