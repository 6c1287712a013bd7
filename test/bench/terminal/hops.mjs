// Where a keystroke's time goes: reads the per-hop timestamps that HANGAR_TRACE_KEYS=<dir> makes
// the hangar command (with its core) and the agent write at exit (shared/src/link/key-trace.ts),
// plus the bench's own `bench.key` / `bench.echo` events, and prints for each pace the median time
// of each hop after the previous one. All processes stamp the same monotonic clock.
//
// A stamp taken after a write returned (`link.flushed`, `core.ws.written`) is not on the path: a
// write to a loopback socket wakes its reader, and on a busy 2-core machine the reader is woken on
// the writer's CPU and preempts it as the write returns (both threads have the 0.1 ms slice), so
// the writer stamps "returned" only once the reader has carried the key on and slept (`perf` on the
// UI's core: the write system call 0.04 ms, then the core off its CPU until the agent had read the
// key and written the pty; in 2 of 3 keys the agent read it before the core stamped). Such a row is
// measured from the stamp before its write (`from`) and the path goes on from that stamp.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { percentile } from '../support.mjs';

/**
 * The path of one keystroke and its echo, in order, as `<process>.<hop>`. A third element
 * `{ from }` makes a side row: measured from that earlier hop's event, and the path goes on
 * from the hop before it as if the row were not there (see above).
 */
export const HOPS = [
  ['cli.stdin', 'hangar attach reads the key from its terminal'],
  ['cli.core.input', 'its core gets it (the in-process door)'],
  ['cli.stream.write', "written to the terminal's stream"],
  ['cli.pump', 'the scheduler frames it (at once on a quiet link)'],
  ['cli.link.send', 'handed to the link to the agent'],
  ['cli.link.write', 'the transport hands it to the TLS socket (socket.write)'],
  [
    'cli.link.flushed',
    'side: socket.write returned (often after the agent ran: not on the path)',
    { from: 'cli.link.write' },
  ],
  ['agent.link.read', 'agent reads it from the socket (after the write began)'],
  ['agent.input', 'attachment gets it'],
  ['agent.pty.written', "side: written to the tmux client's pty", { from: 'agent.input' }],
  ['agent.pty.read', 'tmux client’s answer read from the pty (tmux client + server + pane)'],
  ['agent.stream.write', "written to the terminal's stream"],
  ['agent.pump', 'the scheduler frames it (at once on a quiet link)'],
  ['agent.link.send', 'handed to the link'],
  ['agent.link.write', 'the transport hands it to the TLS socket (socket.write)'],
  [
    'agent.link.flushed',
    'side: socket.write returned (often after the core ran: not on the path)',
    { from: 'agent.link.write' },
  ],
  ['cli.link.read', 'the core reads it from the socket (after the write began)'],
  ['cli.core.output', "the core's terminal has it"],
  ['cli.output', 'hangar attach has it (the in-process door)'],
  ['cli.stdout.written', 'written to its terminal'],
  ['bench.echo', 'the bench reads the echo from the terminal'],
];

/** The same hops in node-floor.mjs's pair (`tls` or `tcp`): what two bare Node processes take. */
export const floorHops = (kind) =>
  HOPS.filter(([hop]) =>
    [
      'cli.stdin',
      'cli.link.flushed',
      'agent.link.read',
      'agent.pty.written',
      'agent.pty.read',
      'agent.link.flushed',
      'cli.link.read',
      'cli.stdout.written',
      'bench.echo',
    ].includes(hop),
  ).map(([hop, what]) => [
    hop === 'bench.echo' ? `bench.${kind}-floor.echo` : `${kind}-floor.${hop}`,
    // The floor pairs stamp only after their writes: there, that stamp is the path.
    hop.endsWith('.link.flushed')
      ? 'socket.write returned (TLS record encrypted, sent)'
      : what
          .replace(/^side: /, '')
          .replace('hangar attach', 'the client')
          .replace(' (uncork)', '')
          .replace('the core reads', 'the client reads')
          .replace(' (after the write began)', ''),
  ]);

/** Reads every `*.trace` file in dir: [{ at, name, bytes }] sorted by time. */
export function readTraces(dir) {
  const events = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.trace'))) {
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      if (!line) continue;
      const [at, name, bytes] = line.split(' ');
      events.push({ at: Number(at), name, bytes: Number(bytes) });
    }
  }
  return events.sort((a, b) => a.at - b.at);
}

/**
 * For each `bench.key.<pace>` event, each hop's first event after the previous hop's and before
 * the echo (a side row's: after its `from` hop's, without moving the path on). Returns rows [hop,
 * description, ...median ms after the previous hop per pace].
 */
export function hopTable(events, paces, hops = HOPS, client = 'bench') {
  const perPace = new Map(paces.map((p) => [p, hops.map(() => [])]));
  const totals = new Map(paces.map((p) => [p, []]));
  for (let i = 0; i < events.length; i++) {
    const key = events[i];
    if (!key.name.startsWith(`${client}.key.`)) continue;
    const pace = key.name.slice(`${client}.key.`.length);
    const deltas = perPace.get(pace);
    if (!deltas) continue;
    let j = i + 1;
    let previous = key.at;
    /** Where each hop of this key was found: [event index, time]. */
    const found = new Map();
    const echo = events.slice(i + 1).find((e) => e.name === `${client}.echo`);
    if (!echo) continue;
    totals.get(pace).push(echo.at - key.at);
    hops.forEach(([hop, , side], h) => {
      const after = side ? found.get(side.from) : [j, previous];
      if (!after) return;
      let k = after[0];
      while (k < events.length && events[k].at <= echo.at && events[k].name !== hop) k++;
      if (k >= events.length || events[k].at > echo.at) return;
      deltas[h].push(events[k].at - after[1]);
      if (side) return;
      found.set(hop, [k + 1, events[k].at]);
      previous = events[k].at;
      j = k + 1;
    });
  }
  const rows = hops.map(([hop, description], h) => [
    hop,
    description,
    ...paces.map((p) => {
      const d = perPace.get(p)[h];
      return d.length ? percentile(d, 50) : undefined;
    }),
  ]);
  rows.push(['total', 'key written → echo read', ...paces.map((p) => percentile(totals.get(p), 50))]);
  return rows;
}

/** The table for hangar attach, and for each node-floor.mjs pair that was traced. */
export function printHopTable(dir, paces) {
  const events = readTraces(dir);
  printTable('hangar attach', hopTable(events, paces), paces);
  for (const kind of ['tls', 'tcp']) {
    if (!events.some((e) => e.name.startsWith(`bench.${kind}-floor.key.`))) continue;
    printTable(`node floor (${kind})`, hopTable(events, paces, floorHops(kind), `bench.${kind}-floor`), paces);
  }
}

function printTable(title, rows, paces) {
  const fmt = (v) => (v === undefined ? '—' : v.toFixed(3));
  console.log(`\n${title}, per hop: median ms after the previous hop (${paces.join(' | ')})\n`);
  console.log(`| hop | what | ${paces.join(' | ')} |`);
  console.log(`|---|---|${paces.map(() => '---').join('|')}|`);
  for (const [hop, description, ...values] of rows)
    console.log(`| ${hop} | ${description} | ${values.map(fmt).join(' | ')} |`);
}
