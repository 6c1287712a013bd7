// A stand-in for a supervised child process (the embedded agent), in a process of its own so a
// supervisor's signals and exits are real. It prints "ready" once it serves, then, by argv[2]:
//   serve  answers each "ping" line on stdin with "pong"; a "crash" line makes it exit with status 3
//   hang   prints "ready", then blocks its event loop for good, as a wedged process does: it answers
//          nothing and ignores SIGTERM, so only SIGKILL ends it (no CPU is burnt while it waits)
//   never  exits with status 2 before it is ready (a setup error)
import { createInterface } from 'node:readline';

const mode = process.argv[2];
if (mode === 'never') {
  process.stderr.write('stand-in: cannot start\n');
  process.exit(2);
}
if (mode === 'hang') {
  process.on('SIGTERM', () => undefined);
  process.stdout.write('ready\n', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0));
} else {
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'ping') process.stdout.write('pong\n');
    if (line === 'crash') process.exit(3);
  });
  process.stdout.write('ready\n');
}
