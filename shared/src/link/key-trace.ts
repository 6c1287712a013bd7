/**
 * Per-hop timestamps of keystrokes and their echoes, for finding where a keystroke's time goes
 * (issue 17). Off unless a process turns it on (HANGAR_TRACE_KEYS=<directory>: see
 * startKeyTraceFromEnv in the agent and the core); off, a hop costs one check of `keyTrace`.
 *
 * Call sites: `keyTrace?.('hop')`. Each event is the system's monotonic clock in ms (the same
 * clock in every process on a machine, so events of the CLI, its core and the agent line up),
 * the hop's name and a byte count. The recorder keeps them in memory and writes them out when
 * the process exits: nothing on the path being measured touches a file.
 */
export type KeyTrace = (hop: string, bytes?: number) => void;

/**
 * Where the recorder is kept for every copy of this module in the process (the hangar command's
 * bundle has its own copy of shared, the core it loads from its tsc output another): a copy
 * loaded after startKeyTrace picks it up.
 */
const RECORDER = Symbol.for('hangar.keyTrace');
const holder = globalThis as unknown as Record<symbol, KeyTrace | undefined>;

/** The recorder, when tracing is on in this process. */
export let keyTrace: KeyTrace | undefined = holder[RECORDER];

/** Events kept at most (a flood would otherwise grow memory without bound). */
const MAX_EVENTS = 1_000_000;

export interface KeyTraceOptions {
  /** Prefix of this process's hop names: `cli`, `agent`, `core`. */
  process: string;
  /** The monotonic clock in ms (Node: process.hrtime.bigint() / 1e6). */
  now: () => number;
}

/** Starts recording; returns the text to write out at exit (`<ms> <process>.<hop> <bytes>` lines). */
export function startKeyTrace(options: KeyTraceOptions): () => string {
  const times: number[] = [];
  const hops: string[] = [];
  const sizes: number[] = [];
  keyTrace = (hop, bytes = 0) => {
    if (times.length >= MAX_EVENTS) return;
    times.push(options.now());
    hops.push(hop);
    sizes.push(bytes);
  };
  holder[RECORDER] = keyTrace;
  return () => {
    const lines: string[] = [];
    for (let i = 0; i < times.length; i++)
      lines.push(`${times[i]!.toFixed(4)} ${options.process}.${hops[i]} ${sizes[i]}`);
    return lines.length > 0 ? `${lines.join('\n')}\n` : '';
  };
}
