// An execution request as the jobs service hands one to an executor, for tests that drive an
// executor directly. JavaScript, not TypeScript: sandbox-crash.mjs runs it under plain node.

/** @typedef {import('../../../src/jobs/executors/types.js').ExecutionRequest} ExecutionRequest */

/**
 * Attempt 1 of job `job1` with no environment, the default network and no limits; timings and
 * checkpoints go nowhere. `fields` says the rest, and may change any of these.
 * @param {Pick<ExecutionRequest, 'command' | 'workdir' | 'output'> & Partial<ExecutionRequest>} fields
 * @returns {ExecutionRequest}
 */
export function executionRequest(fields) {
  return {
    jobId: 'job1',
    attempt: 1,
    env: {},
    network: 'default',
    limits: {},
    timing() {},
    checkpoint() {},
    ...fields,
  };
}
