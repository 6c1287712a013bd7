/**
 * Node flags the host agent runs with, wherever it is started from (`hangar-agent` itself via its
 * shebang, the embedded stack, tests, benchmarks). A young generation capped at 2 MiB per
 * semi-space keeps a streaming agent's resident memory ~10 MB lower than V8's 16 MiB default,
 * at no measurable cost to throughput (test/bench/terminal). Bulk too (issue 16, bench:jobs with
 * BENCH_AGENT_NODE_FLAGS=--max-semi-space-size=16, 100 MB random log followed and artifact fetched,
 * load average 12-14): agent CPU per MB 4.7 / 4.0 / 3.8 ms with 2 MiB against 3.9 / 4.0 / 4.9 ms
 * with 16 MiB, and the collector 11 % against 10 % of the agent's busy time in --cpu-prof. The
 * ~30 % seen before came from a fresh buffer per read, which senders no longer allocate (AckedBuffers).
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

/**
 * Environment the agent runs with. glibc gives each thread that allocates its own malloc arena;
 * with libuv's and V8's threads a streaming agent kept ~9 MB more after a flood than with two
 * arenas (test/bench/terminal). Ignored where the C library is not glibc (macOS).
 */
export const AGENT_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };
