// Preloaded (node --require) into a command the jobs benchmark runs: on exit, writes the process's
// collections to stderr as `gc-count <mark-compacts> <scavenges> <ms>` (--trace-gc would print
// to stdout, which the benchmark checks byte for byte).
const { PerformanceObserver, constants } = require('node:perf_hooks');
const { writeSync } = require('node:fs');

const gcs = { major: 0, minor: 0, ms: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcs.major++;
    if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) gcs.minor++;
    gcs.ms += entry.duration;
  }
}).observe({ entryTypes: ['gc'] });
process.on('exit', () => writeSync(2, `gc-count ${gcs.major} ${gcs.minor} ${gcs.ms.toFixed(1)}\n`));
