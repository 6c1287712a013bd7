// Where a keystroke's time goes: reads the per-hop timestamps that HANGAR_TRACE_KEYS=<dir> makes
// the hangar command (with its core) and the agent write at exit (shared/src/link/key-trace.ts),
// plus the bench's own `bench.key` / `bench.echo` events, and prints for each pace the median time
// of each hop after the previous one. All processes stamp the same monotonic clock.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { percentile } from '../support.mjs';

/** The path of one keystroke and its echo, in order, as `<process>.<hop>`. */
export const HOPS = [
  ['cli.stdin', 'hangar attach reads the key from its terminal'],
  ['cli.core.input', 'its core gets it (the in-process door)'],
  ['cli.stream.write', "written to the terminal's stream"],
  ['cli.pump', 'the scheduler frames it (at once on a quiet link)'],
  ['cli.link.send', 'handed to the link to the agent'],
  ['cli.link.write', 'the transport hands it to the TLS socket (socket.write)'],
  ['cli.link.flushed', 'socket.write returned (TLS record encrypted, sent)'],
  ['agent.link.read', 'agent reads it from the socket'],
  ['agent.input', 'attachment gets it'],
  ['agent.pty.written', "written to the tmux client's pty"],
  ['agent.pty.read', 'tmux client’s answer read from the pty (tmux client + server + pane)'],
  ['agent.stream.write', "written to the terminal's stream"],
  ['agent.pump', 'the scheduler frames it (at once on a quiet link)'],
  ['agent.link.send', 'handed to the link'],
  ['agent.link.write', 'the transport hands it to the TLS socket (socket.write)'],
  ['agent.link.flushed', 'socket.write returned (TLS record encrypted, sent)'],
  ['cli.link.read', 'the core reads it from the socket'],
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
    what.replace('hangar attach', 'the client').replace(' (uncork)', '').replace('the core reads', 'the client reads'),
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
 * the echo. Returns rows [hop, description, ...median ms after the previous hop per pace].
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
    const echo = events.slice(i + 1).find((e) => e.name === `${client}.echo`);
    if (!echo) continue;
    totals.get(pace).push(echo.at - key.at);
    hops.forEach(([hop], h) => {
      let k = j;
      while (k < events.length && events[k].at <= echo.at && events[k].name !== hop) k++;
      if (k >= events.length || events[k].at > echo.at) return;
      deltas[h].push(events[k].at - previous);
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
