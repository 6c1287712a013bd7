import { describe, expect, it } from 'vitest';
import { HOPS, floorHops, hopTable } from '../bench/terminal/hops.mjs';

/** Events as readTraces gives them: sorted by time (ms of the monotonic clock). */
function events(list: [number, string][]): { at: number; name: string; bytes: number }[] {
  return list.map(([at, name]) => ({ at, name, bytes: 0 })).sort((a, b) => a.at - b.at);
}

/** The row of `hop` in a hopTable: its median per pace. */
function row(table: unknown[][], hop: string): unknown[] {
  const found = table.find((r) => r[0] === hop);
  if (!found) throw new Error(`no row ${hop}`);
  return found.slice(2);
}

// bench:terminal's and bench:ui's table of where a keystroke's time goes (issue 17). A write to a
// loopback socket wakes its reader, which on a busy machine often runs first on the writer's CPU:
// the writer's stamp after the write (`link.flushed`) then comes after the reader's. The table
// must follow the key, not the order in which the processes got to stamp.
describe("the benches' hop table (test/bench/terminal/hops.mjs)", () => {
  // One key: the core begins its write at 10.0; the agent reads the key at 10.3 and writes the pty
  // at 10.5 while the core, preempted, stamps its write's return only at 11.0.
  const key = events([
    [0, 'bench.key.200'],
    [9.9, 'cli.link.send'],
    [10.0, 'cli.link.write'],
    [10.3, 'agent.link.read'],
    [10.4, 'agent.input'],
    [10.5, 'agent.pty.written'],
    [11.0, 'cli.link.flushed'],
    [12.0, 'agent.pty.read'],
    // The agent's next read (the ack of the echo, say): not the key's.
    [13.5, 'agent.link.read'],
    [14.0, 'agent.link.write'],
    [14.2, 'cli.link.read'],
    [14.9, 'agent.link.flushed'],
    [20.0, 'bench.echo'],
  ]);

  it('measures the reader from the start of the write, and the write’s return as a side row', () => {
    const table = hopTable(key, ['200']);
    expect((row(table, 'cli.link.flushed')[0] as number).toFixed(3)).toBe('1.000');
    expect((row(table, 'agent.link.read')[0] as number).toFixed(3)).toBe('0.300');
    // The pty's write is a side row too; the answer is timed from the attachment having the key.
    expect((row(table, 'agent.pty.written')[0] as number).toFixed(3)).toBe('0.100');
    expect((row(table, 'agent.pty.read')[0] as number).toFixed(3)).toBe('1.600');
    // The core's read of the echo, from the agent's write, not from its return.
    expect((row(table, 'cli.link.read')[0] as number).toFixed(3)).toBe('0.200');
    expect((row(table, 'agent.link.flushed')[0] as number).toFixed(3)).toBe('0.900');
  });

  it('keeps the floor pairs, which stamp only after their writes, on that stamp', () => {
    const floor = events([
      [0, 'bench.tls-floor.key.200'],
      [1.0, 'tls-floor.cli.link.flushed'],
      [1.4, 'tls-floor.agent.link.read'],
      [5.0, 'bench.tls-floor.echo'],
    ]);
    const table = hopTable(floor, ['200'], floorHops('tls'), 'bench.tls-floor');
    expect((row(table, 'tls-floor.agent.link.read')[0] as number).toFixed(3)).toBe('0.400');
    expect(floorHops('tls').every((hop: unknown[]) => hop.length === 2)).toBe(true);
    expect(HOPS.some(([hop]: unknown[]) => hop === 'cli.link.flushed')).toBe(true);
  });
});
