// A stand-in agent for "a job dies with its agent": starts one sandbox job with the built agent's
// executor (host-agent/dist, `npm run build`), then kill -9s itself `delay` ms after start() resolved.
// argv: dataDir workdir logPath command delay [jobId]
import { openSync } from 'node:fs';
import { SandboxExecutor } from '../../../dist/jobs/executors/sandbox.js';
import { executionRequest } from './execution-request.mjs';

const [dataDir, workdir, logPath, command, delay, jobId = 'crash'] = process.argv.slice(2);
const executor = new SandboxExecutor({ dataDir, cgroupParent: null });
const problem = await executor.check();
if (problem) throw new Error(`${problem.problem}: ${problem.fix}`);
await executor.start(executionRequest({ jobId, command, workdir, output: { fd: openSync(logPath, 'a'), write() {} } }));
setTimeout(() => process.kill(process.pid, 'SIGKILL'), Number(delay));
