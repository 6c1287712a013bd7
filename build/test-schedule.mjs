// How long `vitest run` would take on N workers, from the file durations of a finished run (vitest's
// results cache, node_modules/.vite/vitest/<hash>/results.json of a clean clone's CI run), in the
// order vitest starts files in a clean clone (no cache: the largest file first) and longest first.
// Files go to the first free worker in order, as vitest's pool hands them out; the 'alone' project
// runs after the 'suite' project on one worker. Only the files' own durations are counted (not the
// start of each file's worker and its imports).
//   node build/test-schedule.mjs <results.json> [workers...]
import { readFileSync, statSync } from 'node:fs';

const [path, ...counts] = process.argv.slice(2);
if (!path) {
  console.error('usage: node build/test-schedule.mjs <results.json> [workers...]  (a results.json of vitest run)');
  process.exit(2);
}
const { results } = JSON.parse(readFileSync(path, 'utf8'));
const files = results.map(([key, { duration }]) => {
  const [project, file] = key.split(/:(.*)/s);
  let size = 0;
  try {
    size = statSync(file).size;
  } catch {
    // a file since removed: sorts last
  }
  return { project, file, seconds: duration / 1000, size };
});

/** Wall time of `order` handed to `workers` workers, each taking the next file when it is free. */
function wall(order, workers) {
  const free = Array(workers).fill(0);
  for (const { seconds } of order) {
    const next = free.indexOf(Math.min(...free));
    free[next] += seconds;
  }
  return Math.max(...free);
}

const suite = files.filter((f) => f.project === 'suite');
const alone = files.filter((f) => f.project !== 'suite');
const aloneWall = wall(alone, 1);
const total = suite.reduce((sum, f) => sum + f.seconds, 0);
console.log(
  `${suite.length} suite files, ${total.toFixed(0)} s; ${alone.length} alone, ${aloneWall.toFixed(0)} s on one worker`,
);
for (const workers of (counts.length ? counts : ['2', '3']).map(Number)) {
  const bySize = wall(
    [...suite].sort((a, b) => b.size - a.size),
    workers,
  );
  const longest = wall(
    [...suite].sort((a, b) => b.seconds - a.seconds),
    workers,
  );
  console.log(
    `${workers} workers: suite ${bySize.toFixed(0)} s largest file first (a clean clone's order), ` +
      `${longest.toFixed(0)} s longest first, ${(total / workers).toFixed(0)} s at best; ` +
      `+ alone = ${(bySize + aloneWall).toFixed(0)} s`,
  );
}
