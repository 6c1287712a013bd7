/**
 * Node flags the host agent runs with, wherever it is started from (`hangar-agent` itself via its
 * shebang, the embedded stack, tests, benchmarks). A young generation capped at 2 MiB per
 * semi-space keeps a streaming agent's resident memory ~10 MB lower than V8's 16 MiB default,
 * at no measurable cost to throughput (test/bench/terminal). Bulk too (issue 16, bench:jobs with
 * BENCH_AGENT_NODE_FLAGS=--max-semi-space-size=16, 100 MB random log followed and artifact fetched,
 * load average 12-14): agent CPU per MB 4.7 / 4.0 / 3.8 ms with 2 MiB against 3.9 / 4.0 / 4.9 ms
 * with 16 MiB, and the collector 11 % against 10 % of the agent's busy time in --cpu-prof. The
 * ~30 % seen before came from a fresh buffer per read, which senders no longer allocate (AckedBuffers).
 *
 * `--memory-reducer-single-gc`: V8's memory reducer waits for a process that has gone quiet after a
 * mark-compact (allocating little: an agent serving a person typing) and then runs mark-compacts
 * to shrink the heap, by default up to three in a row, each marked in ~40-120 incremental steps
 * run as tasks between the keys, with pauses of 3-24 ms (--trace-gc, 200 ms between keys, load
 * 3.5-5.5): a key that lands in one waits for it, and the three cost the agent ~50-100 ms of CPU
 * (main thread and concurrent markers). The first gives back the ~3 MB (20 -> 16 MB heap); the
 * other two gave back under 0.5 MB. Without the reducer at all the agent kept 2-4 MB more
 * resident with 20 clients attached (bench:terminal: 81.3 / 82.7 MB against 78.5-79 MB, over its
 * 80 MB target), so it keeps the one that pays.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--memory-reducer-single-gc'];

/**
 * Environment the agent runs with. glibc gives each thread that allocates its own malloc arena;
 * with libuv's and V8's threads a streaming agent kept ~9 MB more after a flood than with two
 * arenas (test/bench/terminal). Ignored where the C library is not glibc (macOS).
 */
export const AGENT_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };
