// A stand-in agent for the crash test, run as its own process so it can be `kill -9`ed: the
// jobs service from the built agent (host-agent/dist, `npm run build`) on the data dir in argv[2].
import { JobSpec } from '@hangar/shared';
import { pino } from 'pino';
import { JobService, ShellExecutor } from '../../dist/jobs/index.js';
import { AgentStore } from '../../dist/store/db.js';

const [dataDir, command, retries] = process.argv.slice(2);
const store = AgentStore.open(dataDir);
const jobs = await JobService.start({
  dataDir,
  db: store.db,
  executors: [new ShellExecutor()],
  publish: (event, data) => {
    if (data.job.state === 'running') process.stdout.write(JSON.stringify({ running: data.job.id }) + '\n');
  },
  logger: pino({ level: 'silent' }),
});
await jobs.submit(JobSpec.parse({ command, executor: 'shell', retries: Number(retries) }), 'a'.repeat(64));
