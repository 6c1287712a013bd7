import type { LaneAcceptor } from '../link/lanes.js';
import type { LaneProcedureTable } from './procedures.js';

/**
 * `lane.grant`: a grant for lanes beside the calling link (lane/PROTOCOL.md), which the lanes
 * opened with it belong to: the link's device, and they close with the link.
 */
export function createLaneProcedures(lanes: LaneAcceptor): LaneProcedureTable {
  return {
    'lane.grant': async (_params, call) => ({ result: lanes.grant({ mux: call.mux, device: call.device }) }),
  };
}
