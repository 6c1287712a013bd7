import { HangarError } from '@hangar/shared';
import type { JobProcedureTable } from './procedures.js';

/** Placeholder until the jobs capability is wired in: every call says jobs are not available yet. */
export function unavailableJobProcedures(): JobProcedureTable {
  const refuse = async (): Promise<never> => {
    throw new HangarError('E_UNAVAILABLE', 'this agent does not run jobs yet; update hangar-agent');
  };
  return {
    'workspace.has': refuse,
    'workspace.upload': refuse,
    'workspace.commit': refuse,
    'job.submit': refuse,
    'job.list': refuse,
    'job.get': refuse,
    'job.logs': refuse,
    'job.cancel': refuse,
    'job.retry': refuse,
    'artifact.list': refuse,
    'artifact.fetch': refuse,
  };
}
