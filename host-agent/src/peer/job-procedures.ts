import { BULK_FRAME_BYTES, BULK_STREAM_WINDOW, HangarError, toHangarError, type LinkStream } from '@hangar/shared';
import { closeSync } from 'node:fs';
import { openArtifactCopy, streamFile, streamLog, type JobService } from '../jobs/index.js';
import type { CallContext, JobProcedureTable } from './procedures.js';

function checkStreamFree(call: CallContext, id: number): void {
  if (call.mux.getStream(id)) {
    throw new HangarError('E_BAD_REQUEST', `stream ${id} is already in use on this link`);
  }
}

/** A sender that fails after the answer went out can only say so on its stream. */
function closeOnFailure(stream: LinkStream): (error: unknown) => void {
  return (error) => {
    const failure = toHangarError(error);
    stream.close({ code: failure.code, message: failure.message.slice(0, 1000) }, { flush: false });
  };
}

/**
 * The job calls. Jobs belong to the host: every paired device may list, follow and cancel any
 * of them (the link has already established which device is asking; submit records it).
 * Streams: uploads are opened here before answering, since the client writes only after the
 * answer; logs and artifacts are opened in `after`, so no byte overtakes the answer.
 */
export function createJobProcedures(jobs: JobService): JobProcedureTable {
  return {
    'workspace.has': async (params) => ({ result: { present: jobs.workspaces.has(params.hash) } }),

    'workspace.upload': async (params, call) => {
      checkStreamFree(call, params.stream_id);
      jobs.workspaces.checkSize(params.size);
      const stream = call.mux.openStream({
        id: params.stream_id,
        window: BULK_STREAM_WINDOW,
        maxFrameBytes: BULK_FRAME_BYTES,
      });
      jobs.workspaces.receive(params.hash, params.size, stream);
      return { result: {} };
    },

    'workspace.commit': async (params) => {
      const { size } = await jobs.workspaces.commit(params.hash);
      return { result: { present: true, size } };
    },

    'job.submit': async (spec, call) => ({ result: await jobs.submit(spec, call.device) }),

    'job.list': async (params) => ({ result: { jobs: jobs.list(params.limit, params.states) } }),

    'job.get': async (params) => ({ result: jobs.get(params.id) }),

    'job.logs': async (params, call) => {
      checkStreamFree(call, params.stream_id);
      const { attempt, size, source } = jobs.logs(params.id, params.attempt);
      if (params.from > size && source.state().final !== undefined) {
        throw new HangarError(
          'E_BAD_REQUEST',
          `log of attempt ${attempt} has ${size} bytes; cannot start at ${params.from}`,
        );
      }
      return {
        result: { attempt, from: params.from, compression: params.compression },
        after: () => {
          // Uncompressed, stream offsets are log offsets; compressed, the stream counts block bytes from 0.
          const stream = call.mux.openStream({
            id: params.stream_id,
            sendOffset: params.compression === 'none' ? params.from : 0,
            window: BULK_STREAM_WINDOW,
            maxFrameBytes: BULK_FRAME_BYTES,
          });
          streamLog(source, stream, params).catch(closeOnFailure(stream));
        },
      };
    },

    'job.cancel': async (params) => ({ result: await jobs.cancel(params.id) }),

    'job.retry': async (params) => ({ result: await jobs.retry(params.id) }),

    'artifact.list': async (params) => ({ result: { artifacts: jobs.artifacts(params.id) } }),

    'artifact.fetch': async (params, call) => {
      checkStreamFree(call, params.stream_id);
      const { info, dir } = jobs.artifactFile(params.id, params.path);
      if (params.from > info.size) {
        throw new HangarError(
          'E_BAD_REQUEST',
          `artifact "${info.path}" has ${info.size} bytes; cannot start at ${params.from}`,
        );
      }
      // What took the collected copy's place is refused in the answer (opened again to send it).
      closeSync(openArtifactCopy(dir, info, params.id));
      return {
        result: info,
        after: () => {
          const stream = call.mux.openStream({
            id: params.stream_id,
            sendOffset: params.from,
            window: BULK_STREAM_WINDOW,
            maxFrameBytes: BULK_FRAME_BYTES,
          });
          streamFile(() => openArtifactCopy(dir, info, params.id), stream, params.from).catch(closeOnFailure(stream));
        },
      };
    },
  };
}
