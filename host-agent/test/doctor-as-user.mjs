// `hangar-agent doctor` as an agent that is not root: run by a test (as root) under setpriv as
// another user, with the supplementary groups the test gives it. Uses the built agent (host-agent/dist,
// `npm run build`). Prints the results as JSON. argv: dataDir
import { runDoctor } from '../dist/doctor/index.js';

const [dataDir] = process.argv.slice(2);
process.stdout.write(`${JSON.stringify(await runDoctor({ platform: 'linux', dataDir }))}\n`);
