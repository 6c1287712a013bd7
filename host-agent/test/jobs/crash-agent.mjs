// A stand-in agent for the crash tests, run as its own process so it can be `kill -9`ed: the
// jobs service from the built agent (host-agent/dist, `npm run build`) on the data dir in argv[2].
// argv: dataDir command retries [executor: shell (default) | sandbox] [bwrap path, for sandbox]
import { JobSpec } from '@hangar/shared';
import { pino } from 'pino';
import { JobService, ShellExecutor } from '../../dist/jobs/index.js';
import { SandboxExecutor } from '../../dist/jobs/executors/sandbox.js';
import { AgentStore } from '../../dist/store/db.js';

const [dataDir, command, retries, executor = 'shell', bwrapPath] = process.argv.slice(2);
const store = AgentStore.open(dataDir);
const jobs = await JobService.start({
  dataDir,
  db: store.db,
  executors: [
    executor === 'sandbox' ? new SandboxExecutor({ dataDir, cgroupParent: null, bwrapPath }) : new ShellExecutor(),
  ],
  publish: (event, data) => {
    if (data.job.state === 'running') process.stdout.write(JSON.stringify({ running: data.job.id }) + '\n');
  },
  logger: pino({ level: 'silent' }),
});
await jobs.submit(JobSpec.parse({ command, executor, retries: Number(retries) }), 'a'.repeat(64));
