import type { TaskService } from '../tasks/index.js';
import type { TaskProcedureTable } from './procedures.js';

/**
 * The agent task calls. Tasks belong to the host: every paired device may list and cancel any of
 * them (claim records which device handed a task over).
 */
export function createTaskProcedures(tasks: TaskService): TaskProcedureTable {
  return {
    'task.claim': async (params, call) => ({ result: await tasks.claim(params, call.device) }),
    'task.list': async () => ({ result: tasks.list() }),
    'task.get': async (params) => ({ result: tasks.get(params.id) }),
    'task.cancel': async (params) => ({ result: await tasks.cancel(params.id) }),
  };
}
