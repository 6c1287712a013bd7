import {
  HangarError,
  JobId,
  JobSpec,
  parseOrThrow,
  type DownloadedArtifact,
  type HostFailure,
  type JobDetail,
  type JobInfo,
  type JobSpecInput,
} from '@hangar/shared';
import { askEachHost, listOnHosts } from '../hosts/fan-out.js';
import { downloadArtifacts, type DownloadProgress } from './artifacts.js';
import { RECONNECT_PATIENCE_MS, type JobLink } from './job-link.js';
import { followJobLog, isFinal, waitForJob, type FollowOptions, type LogEnd, type LogSink } from './log-follower.js';
import { packWorkspace, type PackOptions, type PackedWorkspace } from './pack.js';
import { uploadWorkspace, type UploadProgress, type UploadResult } from './upload.js';

export interface HostJobs {
  host: string;
  jobs: JobInfo[];
  error: HostFailure | null;
}

export interface FoundJob {
  host: string;
  job: JobDetail;
}

/**
 * Build jobs on paired hosts: pack and upload a workspace, submit, follow logs, cancel, retry,
 * download artifacts. Job ids are unique across hosts, so a job can be found without its host.
 */
export class JobsApi {
  /**
   * `listed`: how a host's newest jobs are had; by default it is asked (`ask`). A running core
   * answers from what the host's events kept current (hosts/known-jobs.ts).
   */
  constructor(
    private readonly connectionFor: (host: string) => JobLink,
    private readonly hostNames: () => string[],
    private readonly listed: (
      host: string,
      limit: number,
      ask: (limit: number) => Promise<JobInfo[]>,
    ) => Promise<JobInfo[]> = (_host, limit, ask) => ask(limit),
  ) {}

  pack(dir: string, options?: PackOptions): Promise<PackedWorkspace> {
    return packWorkspace(dir, options);
  }

  upload(host: string, packed: PackedWorkspace, onProgress?: (p: UploadProgress) => void): Promise<UploadResult> {
    return uploadWorkspace(this.connectionFor(host), packed, onProgress);
  }

  async submit(host: string, spec: JobSpecInput): Promise<JobInfo> {
    const checked = parseOrThrow(JobSpec, spec, 'job');
    return this.connectionFor(host).call('job.submit', checked);
  }

  async get(host: string, id: string): Promise<JobDetail> {
    return this.connectionFor(host).call('job.get', { id: checkId(id) });
  }

  /** Jobs of one host, or of every paired host; a host that cannot be reached is reported, not fatal. */
  async list(host?: string, limit = 50): Promise<HostJobs[]> {
    const ask = (name: string) => async (count: number) =>
      (await this.connectionFor(name).call('job.list', { limit: count })).jobs;
    return listOnHosts(this.hostNames(), host, async (name) => ({ jobs: await this.listed(name, limit, ask(name)) }), {
      jobs: [],
    });
  }

  /** The job on `host`, or on whichever paired host has it. */
  async find(id: string, host?: string): Promise<FoundJob> {
    checkId(id);
    if (host) return { host, job: await this.get(host, id) };
    const answers = await askEachHost(this.hostNames(), (name) => this.get(name, id));
    const hit = answers.find((a) => a.ok);
    if (hit?.ok) return { host: hit.host, job: hit.value };
    const unreachable = answers.filter((a) => !a.ok && !a.error.code.endsWith('NOT_FOUND')).map((a) => a.host);
    throw new HangarError(
      'E_JOB_NOT_FOUND',
      `no paired host has job ${id}` +
        (unreachable.length > 0 ? ` (could not ask: ${unreachable.join(', ')}; try again or pass --host)` : '') +
        '; list the jobs with: hangar jobs',
    );
  }

  async cancel(id: string, host?: string): Promise<{ host: string; job: JobInfo }> {
    const at = host ?? (await this.find(id)).host;
    return { host: at, job: await this.connectionFor(at).call('job.cancel', { id: checkId(id) }) };
  }

  async retry(id: string, host?: string): Promise<{ host: string; job: JobInfo }> {
    const at = host ?? (await this.find(id)).host;
    return { host: at, job: await this.connectionFor(at).call('job.retry', { id: checkId(id) }) };
  }

  followLogs(host: string, id: string, options: FollowOptions, sink: LogSink): Promise<LogEnd> {
    return followJobLog(this.connectionFor(host), checkId(id), options, sink);
  }

  /** Resolves with the job once it reaches a final state. */
  waitForFinal(host: string, id: string, patienceMs = RECONNECT_PATIENCE_MS): Promise<JobDetail> {
    return waitForJob(this.connectionFor(host), checkId(id), patienceMs, (job) => isFinal(job.state));
  }

  downloadArtifacts(
    host: string,
    id: string,
    outDir: string,
    onProgress?: (p: DownloadProgress) => void,
    only?: readonly string[],
  ): Promise<DownloadedArtifact[]> {
    return downloadArtifacts(this.connectionFor(host), checkId(id), outDir, onProgress, only);
  }
}

function checkId(id: string): string {
  return parseOrThrow(JobId, id, 'job id');
}

export { isFinal } from './log-follower.js';
export { DEFAULT_MAX_WORKSPACE_BYTES, type PackedWorkspace } from './pack.js';
export type { DownloadProgress } from './artifacts.js';
export type { FollowOptions, LogChunk, LogEnd, LogSink } from './log-follower.js';
export type { UploadProgress, UploadResult } from './upload.js';
export type { JobLink } from './job-link.js';
