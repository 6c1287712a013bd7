import type { PreviewService } from '../previews/index.js';
import type { PreviewProcedureTable } from './procedures.js';

/**
 * The preview calls. Previews belong to the host, like its sessions: every paired device may
 * list, add, remove and open them (add records which device asked). Only registered ports are
 * ever connected to, and only on the host's loopback (PreviewService).
 */
export function createPreviewProcedures(previews: PreviewService): PreviewProcedureTable {
  return {
    'preview.list': async () => ({ result: await previews.list() }),

    'preview.add': async (params, call) => ({ result: await previews.add(params.port, params.label, call.device) }),

    'preview.remove': async (params) => {
      await previews.remove(params.port);
      return { result: {} };
    },

    'preview.watch': async (params, call) => {
      previews.watchFor(call.mux, params.watch);
      return { result: {} };
    },

    'preview.connect': async (params, call) => {
      const connection = await previews.connect(params.port, call.mux, params.stream_id);
      return {
        result: { address: connection.address, source_port: connection.sourcePort },
        after: () => connection.start(),
      };
    },
  };
}
