/**
 * Node flags the host agent runs with, wherever it is started from (`hangar-agent` itself via its
 * shebang, the embedded stack, tests, benchmarks). A young generation capped at 2 MiB per
 * semi-space keeps a streaming agent's resident memory ~10 MB lower than V8's 16 MiB default,
 * at no measurable cost to throughput (test/bench/terminal).
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

/**
 * Environment the agent runs with. glibc gives each thread that allocates its own malloc arena;
 * with libuv's and V8's threads a streaming agent kept ~9 MB more after a flood than with two
 * arenas (test/bench/terminal). Ignored where the C library is not glibc (macOS).
 */
export const AGENT_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };
