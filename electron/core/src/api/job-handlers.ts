import { HangarError, type CORE_PROCEDURES, type ProcedureHandlers } from '@hangar/shared';
import { join } from 'node:path';
import type { ApiContext } from './handlers.js';
import { openJobLog } from './job-logs.js';
import { progressReporter } from './progress.js';

type JobMethod = Extract<keyof typeof CORE_PROCEDURES, `jobs.${string}` | `artifacts.${string}`>;

/**
 * The job calls of CORE_PROCEDURES. Multi-step flows live here once: submitting a folder packs,
 * uploads and submits (hangar run and the UI call the same thing); a job without its host is
 * found on whichever paired host has it.
 */
export const jobHandlers: Pick<ProcedureHandlers<typeof CORE_PROCEDURES, ApiContext>, JobMethod> = {
  'jobs.list': async (params, { core }) => ({ result: { hosts: await core.jobs.list(params.host, params.limit) } }),

  'jobs.get': async (params, { core }) => ({ result: await core.jobs.find(params.id, params.host) }),

  'jobs.submit': async (params, { core, publish }) => {
    // An unknown host is said before a folder is packed (an account host's first link happens here).
    await core.connection(params.host).link();
    const host = params.host;
    let workspace = params.spec.workspace;
    let upload = null;
    if (params.folder !== undefined) {
      const packed = await core.jobs.pack(params.folder);
      try {
        const progress = progressReporter(publish, params.op_id, 'uploading workspace');
        const sent = await core.jobs.upload(host, packed, progress?.report);
        progress?.flush();
        upload = { hash: packed.hash, size: packed.size, skipped: sent.skipped };
      } finally {
        await packed.dispose();
      }
      workspace = packed.hash;
    }
    const job = await core.jobs.submit(host, { ...params.spec, workspace });
    return { result: { host, job, upload } };
  },

  'jobs.logs': async (params, { core, mux, publish }) => {
    const { attempt, after } = await openJobLog(core, mux, params, publish);
    return { result: { attempt }, after };
  },

  'jobs.wait': async (params, { core }) => {
    const host = params.host ?? (await core.jobs.find(params.id)).host;
    return { result: { host, job: await core.jobs.waitForFinal(host, params.id) } };
  },

  'jobs.cancel': async (params, { core }) => ({ result: await core.jobs.cancel(params.id, params.host) }),

  'jobs.retry': async (params, { core }) => ({ result: await core.jobs.retry(params.id, params.host) }),

  'artifacts.download': async (params, { core, platform, door, publish }) => {
    if (params.dir !== undefined && door !== 'cli') {
      // A page (even a compromised one) must not choose where host-supplied files land here.
      throw new HangarError(
        'E_BAD_REQUEST',
        'dir: only the hangar command chooses where artifacts go; a window saves them in Downloads',
      );
    }
    // By default a job's artifacts land together in Downloads/<job id>/.
    const dir = params.dir ?? join(platform.downloadsDir(), params.id);
    const progress = progressReporter(publish, params.op_id, `downloading artifacts of ${params.id}`);
    const only = params.path !== undefined ? [params.path] : undefined;
    const files = await core.jobs.downloadArtifacts(params.host, params.id, dir, progress?.report, only);
    progress?.flush();
    return { result: { dir, files } };
  },
};
