import { CORE_PROCEDURES, HangarError, type JobInfo, type Mux, type ProcedureHandlers } from '@hangar/shared';
import { join } from 'node:path';
import type { HangarCore } from '../core.js';
import type { Platform } from '../platform.js';
import type { HostMonitor } from './host-monitor.js';
import { openJobLog } from './job-logs.js';
import type { UiTerminals } from './terminals.js';

/** What a handler may use: the core, and the calling UI connection's own resources. */
export interface ApiContext {
  core: HangarCore;
  monitor: HostMonitor;
  platform: Platform;
  mux: Mux;
  terminals: UiTerminals;
}

export type CoreHandlers = ProcedureHandlers<typeof CORE_PROCEDURES, ApiContext>;

/**
 * One handler per CORE_PROCEDURES entry (shared/src/protocol/core-api.ts). Params arrive parsed
 * by that table; results are checked against it on the way out. The renderer never sees keys:
 * everything it gets is a HostView, a session, a job or bytes on a stream.
 */
export const coreHandlers: CoreHandlers = {
  'hosts.list': async (_params, { monitor }) => ({ result: { hosts: await monitor.views({ fresh: true }) } }),

  'hosts.add': async (params, { core, monitor }) => {
    await core.addHost({ name: params.name, address: params.address, code: params.code });
    await monitor.settle(params.name);
    const host = (await monitor.views({ fresh: true })).find((h) => h.name === params.name);
    if (!host) throw new HangarError('E_INTERNAL', `host "${params.name}" was paired but is not listed`);
    return { result: { host } };
  },

  'hosts.rename': async (params, { core }) => {
    core.renameHost(params.name, params.new_name);
    return { result: {} };
  },

  'hosts.remove': async (params, { core }) => {
    await core.removeHost(params.name);
    return { result: {} };
  },

  'sessions.list': async (params, { core }) => {
    const all = params.host ? [await core.hostSessions(params.host)] : await core.listAllSessions();
    return {
      result: {
        hosts: all.map((h) => ({ host: h.host, sessions: h.sessions, error: h.error?.message ?? null, tmux: h.tmux })),
      },
    };
  },

  'sessions.create': async (params, { core }) => ({ result: await core.createSession(params.host, params.session) }),

  'sessions.kill': async (params, { core }) => {
    await core.killSession(params.host, params.name);
    return { result: {} };
  },

  'terminal.open': async (params, { terminals }) => {
    const { terminalId, after } = await terminals.open(params);
    return { result: { terminal_id: terminalId }, after };
  },

  'terminal.resize': async (params, { terminals }) => {
    terminals.resize(params.terminal_id, params.cols, params.rows);
    return { result: {} };
  },

  'terminal.close': async (params, { terminals }) => {
    await terminals.close(params.terminal_id);
    return { result: {} };
  },

  'jobs.list': async (params, { core }) => {
    const hosts = await core.jobs.list(params.host);
    const jobs = hosts.flatMap((h) => h.jobs.map((job: JobInfo) => ({ host: h.host, job })));
    jobs.sort((a, b) => b.job.created_at - a.job.created_at);
    return { result: { jobs } };
  },

  'jobs.get': async (params, { core }) => ({ result: await core.jobs.get(params.host, params.id) }),

  'jobs.submit': async (params, { core }) => {
    let workspace = params.spec.workspace;
    if (params.folder) {
      const packed = await core.jobs.pack(params.folder);
      try {
        await core.jobs.upload(params.host, packed);
      } finally {
        await packed.dispose();
      }
      workspace = packed.hash;
    }
    const job = await core.jobs.submit(params.host, { ...params.spec, workspace });
    return { result: { host: params.host, job } };
  },

  'jobs.logs': async (params, { core, mux }) => {
    const { attempt, after } = await openJobLog(core, mux, params);
    return { result: { attempt }, after };
  },

  'jobs.cancel': async (params, { core }) => ({ result: (await core.jobs.cancel(params.id, params.host)).job }),

  'jobs.retry': async (params, { core }) => ({ result: (await core.jobs.retry(params.id, params.host)).job }),

  'artifacts.download': async (params, { core, platform }) => {
    // A job's artifacts land together in Downloads/<job id>/ (sha256-checked before renamed into place).
    const dir = join(platform.downloadsDir(), params.id);
    const [wanted] = await core.jobs.downloadArtifacts(params.host, params.id, dir, undefined, [params.path]);
    const { file, ...artifact } = wanted!;
    return { result: { saved_to: file, artifact } };
  },

  'previews.list': async (params, { core }) => {
    const hosts = await core.previews.list(params.host);
    return {
      result: {
        hosts: hosts.map((h) => ({
          host: h.host,
          previews: h.previews,
          listening: h.listening,
          error: h.error?.message ?? null,
        })),
      },
    };
  },

  'previews.add': async (params, { core }) => ({
    result: await core.previews.add(params.host, params.port, params.label),
  }),

  'previews.remove': async (params, { core }) => {
    await core.previews.remove(params.host, params.port);
    return { result: {} };
  },

  'previews.open': async (params, { core }) => ({
    // Opened from a UI: remembered, so the next npm start serves it again at the same address.
    result: await core.previews.open(params.host, params.port, params.local_port, { remember: true }),
  }),

  'previews.close': async (params, { core }) => {
    await core.previews.close(params.host, params.port);
    return { result: {} };
  },
};
