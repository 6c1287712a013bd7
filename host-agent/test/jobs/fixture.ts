import {
  BULK_STREAM_WINDOW,
  ControlClient,
  FINAL_JOB_STATES,
  HOST_EVENTS,
  HOST_PROCEDURES,
  LOG_BLOCK,
  LogBlockReader,
  Mux,
  createMemoryTransportPair,
  type CloseReason,
  type HostMethod,
  type JobInfo,
  type JobSpecInput,
  type JobState,
  type LinkStream,
} from '@hangar/shared';
import { JobSpec } from '@hangar/shared';
import { mkdtempSync, rmSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { JobService, ShellExecutor, type JobServiceOptions } from '../../src/jobs/index.js';
import { ClientPeer } from '../../src/peer/client-peer.js';
import { createJobProcedures } from '../../src/peer/job-procedures.js';
import { createPreviewProcedures } from '../../src/peer/preview-procedures.js';
import {
  createProcedures,
  type AgentServices,
  type BackupProcedureTable,
  type LaneProcedureTable,
  type TaskProcedureTable,
} from '../../src/peer/procedures.js';
import { PreviewService } from '../../src/previews/index.js';
import { rawCall } from '../../../test/support/raw-call.js';
import { AgentStore } from '../../src/store/db.js';

export const DEVICE = 'a'.repeat(64);

export type JobHostOptions = Partial<Omit<JobServiceOptions, 'dataDir' | 'db' | 'publish' | 'logger'>> & {
  dataDir?: string;
};

/** A JobService on a temp data dir with real SQLite and the shell executor; tests shorten every delay. */
export async function startJobHost(options: JobHostOptions = {}) {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'hangar-jobs-'));
  const store = AgentStore.open(dataDir);
  const events: JobInfo[] = [];
  const clients = new Set<TestClient>();
  const jobs = await JobService.start({
    killGraceMs: 1000,
    retryBackoff: { baseMs: 50, maxMs: 200 },
    executors: [new ShellExecutor()],
    ...options,
    dataDir,
    db: store.db,
    logger: pino({ level: 'silent' }),
    publish: (event, data) => {
      if (event === 'job.updated') events.push((data as { job: JobInfo }).job);
      clients.forEach((client) => client.peer.publish(event, data));
    },
  });
  // The link serves the whole table, as an agent's does; these tests make no preview calls.
  const previews = new PreviewService({
    db: store.db,
    ownPorts: () => [],
    publish: () => {},
    logger: pino({ level: 'silent' }),
  });
  let disposed = false;
  const host = {
    dataDir,
    store,
    jobs,
    events,
    submit: (spec: JobSpecInput) => jobs.submit(JobSpec.parse(spec), DEVICE),
    /** Resolves when the job reaches one of `states` (default: any final state). */
    waitFor: (id: string, states: readonly JobState[] = FINAL_JOB_STATES, timeoutMs = 20_000) =>
      waitUntil(() => {
        const job = jobs.get(id);
        return states.includes(job.state) ? job : undefined;
      }, timeoutMs),
    /** A client linked to these job procedures over an in-memory transport. */
    connect: () => {
      const client = new TestClient(jobs, previews);
      clients.add(client);
      return client;
    },
    /** Stops the service (not the data): what an agent restart does. */
    stop: async () => {
      if (disposed) return;
      disposed = true;
      clients.forEach((client) => client.dispose());
      previews.dispose();
      await jobs.dispose();
      store.dispose();
    },
    async [Symbol.asyncDispose]() {
      await host.stop();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return host;
}

export async function waitUntil<T>(probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The client end of a link whose agent end serves only the job calls. */
export class TestClient {
  readonly mux: Mux;
  readonly peer: ClientPeer;
  private readonly pair = createMemoryTransportPair();
  private readonly control: ControlClient<typeof HOST_PROCEDURES, typeof HOST_EVENTS>;

  constructor(jobs: JobService, previews: PreviewService) {
    const [clientEnd, agentEnd] = this.pair;
    const procedures = createProcedures(
      {} as AgentServices,
      createJobProcedures(jobs),
      createPreviewProcedures(previews),
      {} as TaskProcedureTable,
      {} as BackupProcedureTable,
      {} as LaneProcedureTable,
    );
    this.peer = new ClientPeer(
      { transport: agentEnd, device: { public_key: DEVICE, name: 'test' }, remoteAddress: 'memory', via: 'pinned' },
      procedures,
      pino({ level: 'silent' }),
    );
    this.mux = new Mux(clientEnd, { role: 'client' });
    this.control = new ControlClient(this.mux, HOST_PROCEDURES, HOST_EVENTS, { peer: 'the test agent' });
  }

  /** A call as a client makes it (shared's ControlClient: checked here, then by the agent). */
  call<T = unknown>(method: string, params: unknown): Promise<T> {
    return this.control.call(method as HostMethod, params as never) as Promise<T>;
  }

  /** Params as given, unchecked: for what the agent itself refuses. */
  callUnchecked<T = unknown>(method: string, params: unknown): Promise<T> {
    return rawCall(this.mux, method, params) as Promise<T>;
  }

  openStream(recvOffset = 0): LinkStream {
    return this.mux.openStream({ recvOffset, window: BULK_STREAM_WINDOW });
  }

  /**
   * Reads a job's log from `from`; `stopAfter` closes the stream from this side once that many
   * bytes arrived (a client that goes away mid-way).
   */
  async readLog(
    id: string,
    options: {
      from?: number;
      follow?: boolean;
      stopAfter?: number;
      attempt?: number;
      compression?: 'deflate';
      /** Ack each whole block once it is read, nothing before (as cores did before raw blocks came in pieces). */
      ackBlocks?: boolean;
    } = {},
  ): Promise<{
    data: Buffer;
    end: number;
    reason: CloseReason;
    blocks: { raw: number; deflate: number; largest: number };
  }> {
    const from = options.from ?? 0;
    const compressed = options.compression === 'deflate';
    // Compressed, the stream counts block bytes from 0 and the blocks carry the log.
    const stream = this.openStream(compressed ? 0 : from);
    if (options.ackBlocks) stream.autoAck = false;
    const reader = new LogBlockReader();
    const blocks = { raw: 0, deflate: 0, largest: 0 };
    const chunks: Buffer[] = [];
    let expected = compressed ? 0 : from;
    let end = from;
    let received = 0;
    const closed = new Promise<CloseReason>((resolve) => stream.onClose(resolve));
    const take = (data: Uint8Array) => {
      end += data.length;
      received += data.length;
      chunks.push(Buffer.from(data));
    };
    stream.onData((data, offset) => {
      if (offset !== expected) throw new Error(`stream bytes at ${offset}, expected ${expected}`);
      expected += data.length;
      if (!compressed) take(data);
      for (const block of compressed ? reader.push(data) : []) {
        const bytes = block.kind === LOG_BLOCK.deflate ? inflateRawSync(block.body) : block.body;
        if (bytes.length !== block.logBytes)
          throw new Error(`block of ${bytes.length} bytes, header said ${block.logBytes}`);
        blocks[block.kind === LOG_BLOCK.deflate ? 'deflate' : 'raw']++;
        blocks.largest = Math.max(blocks.largest, block.logBytes);
        take(bytes);
        if (options.ackBlocks && !stream.closed) stream.ack(block.end);
      }
      if (options.stopAfter !== undefined && received >= options.stopAfter) {
        stream.close({ code: 'client_gone', message: 'test disconnects' });
      }
    });
    const result = await this.call<{ compression: string }>('job.logs', {
      id,
      from,
      follow: options.follow ?? false,
      stream_id: stream.id,
      ...(options.attempt !== undefined ? { attempt: options.attempt } : {}),
      ...(compressed ? { compression: 'deflate' } : {}),
    });
    if (result.compression !== (options.compression ?? 'none')) throw new Error(`answered ${result.compression}`);
    const reason = await closed;
    if (reader.pending !== 0) throw new Error(`${reader.pending} bytes of an unfinished block`);
    return { data: Buffer.concat(chunks), end, reason, blocks };
  }

  dispose(): void {
    this.mux.dispose();
    this.peer.dispose();
  }
}

export function jobIsFinal(job: JobInfo): boolean {
  return FINAL_JOB_STATES.includes(job.state);
}

/** Live (not zombie) process ids whose process group is `pgid`, from the process table. */
export async function groupMembers(pgid: number): Promise<number[]> {
  if (!Number.isInteger(pgid) || pgid <= 1) throw new Error(`not a process group: ${pgid}`);
  const { execFileSync } = await import('node:child_process');
  const out = execFileSync('ps', ['-e', '-o', 'pid=,pgid=,stat='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([, group, stat]) => Number(group) === pgid && !stat?.startsWith('Z'))
    .map(([pid]) => Number(pid));
}

export function cleanupDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** The process group an attempt checkpointed (shell executor). */
export function checkpointedPgid(store: AgentStore, id: string, attempt = 1): number | undefined {
  const row = store.db
    .prepare('SELECT checkpoint FROM job_attempts WHERE job_id = ? AND number = ?')
    .get(id, attempt) as { checkpoint: string | null } | undefined;
  if (!row?.checkpoint) return undefined;
  return (JSON.parse(row.checkpoint) as { pgid: number }).pgid;
}
