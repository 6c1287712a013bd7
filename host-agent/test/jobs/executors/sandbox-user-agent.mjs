// A stand-in agent that is not root: run by a test (as root) under setpriv as another user, it
// starts one sandbox job with the built agent's executor (host-agent/dist, `npm run build`), the
// way a user's own agent does, and cancels it when its stdin closes.
// argv: dataDir workdir logPath command jobId
import { openSync } from 'node:fs';
import { SandboxExecutor } from '../../../dist/jobs/executors/sandbox.js';
import { executionRequest } from './execution-request.mjs';

const [dataDir, workdir, logPath, command, jobId] = process.argv.slice(2);
const executor = new SandboxExecutor({ dataDir, cgroupParent: null });
const problem = await executor.check();
if (problem) throw new Error(`${problem.problem}: ${problem.fix}`);
const output = { fd: openSync(logPath, 'a'), write() {} };
const execution = await executor.start(executionRequest({ jobId, command, workdir, output }));
process.stdin.resume();
process.stdin.on('end', () => void execution.cancel(500));
const result = await execution.done;
await executor.dispose();
process.stdout.write(`${JSON.stringify({ exitCode: result.exitCode })}\n`);
process.exit(0);
