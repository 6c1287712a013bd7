// Preloaded into an agent by job-end.mjs (`--import`): the agent's event-loop delay, written as
// JSON to BENCH_LOOP_DELAY_FILE and reset on SIGUSR2. Not part of the agent.
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const histogram = monitorEventLoopDelay({ resolution: 1 });
histogram.enable();
process.on('SIGUSR2', () => {
  const ms = (ns) => ns / 1e6;
  const figures = { p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max) };
  writeFileSync(process.env.BENCH_LOOP_DELAY_FILE, JSON.stringify(figures));
  histogram.reset();
});
