#!/usr/bin/env node
// Agent-state benchmark: how long from Claude Code running a hook (here: the hook command itself,
// run as Claude runs it, `sh -c` with the event on stdin) to the state reaching a connected client
// in a sessions.changed event, p50/p95/p99, next to the floor measured in the same run: the same
// append noticed by a bare fs.watch in this process. Target (../shared/research/agents.md T1):
// agent event → state in the UI p95 ≤ 1 s. Uses the stand-in Claude (test/fixtures/claude).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HangarCore } from '@hangar/desktop/core';
import { AGENT, HANGAR, ROOT, percentile, sleep, startAgent } from '../support.mjs';
import { tmuxSocketNameOf } from '@hangar/shared';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 100);
const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-agents-')));
const data = join(dir, 'agent');
const env = { ...process.env, HANGAR_HOME: join(dir, 'home') };
const agent = await startAgent({ data, env });
try {
  const { code } = JSON.parse(
    execFileSync(process.execPath, [AGENT, 'pair', '--data', data, '--json'], { encoding: 'utf8' }),
  );
  execFileSync(process.execPath, [HANGAR, 'hosts', 'add', 'bench', agent.address, '--code', code], { env });
  const core = await HangarCore.open({ home: env.HANGAR_HOME });
  const connection = core.connection('bench');
  await connection.link();
  let waiting;
  connection.onEvent(({ event, data: payload }) => {
    if (event !== 'sessions.changed' || !waiting) return;
    const state = payload.sessions.find((s) => s.name === 'bench')?.agent?.state;
    if (state === waiting.state) waiting.resolve(performance.now());
  });
  const stateReached = (state) => new Promise((resolve) => (waiting = { state, resolve }));

  await core.createSession('bench', { name: 'bench', command: [join(ROOT, 'test', 'fixtures', 'claude', 'claude')] });
  await sleep(1000);
  const settings = JSON.parse(readFileSync(join(data, 'sessions', 'bench', 'claude-settings.json'), 'utf8'));
  const hookOf = (event) => settings.hooks[event][0].hooks[0].command;
  const runHook = (event) =>
    spawnSync('sh', ['-c', hookOf(event)], { input: JSON.stringify({ hook_event_name: event, session_id: 'b' }) });

  const toUi = [];
  const hookCost = [];
  for (let i = 0; i < ROUNDS; i++) {
    const [event, state] = i % 2 === 0 ? ['UserPromptSubmit', 'running'] : ['Stop', 'idle'];
    const reached = stateReached(state);
    const began = performance.now();
    runHook(event);
    hookCost.push(performance.now() - began);
    toUi.push((await reached) - began);
    await sleep(20);
  }

  // The floor: the same kind of append, noticed by fs.watch in this process.
  const floorFile = join(dir, 'floor');
  execFileSync('touch', [floorFile]);
  const floor = [];
  const watcher = watch(floorFile);
  for (let i = 0; i < ROUNDS; i++) {
    const noticed = new Promise((resolve) => watcher.once('change', () => resolve(performance.now())));
    const began = performance.now();
    spawnSync('sh', ['-c', `printf 'x\\n' >> '${floorFile}'`]);
    floor.push((await noticed) - began);
    await sleep(5);
  }
  watcher.close();
  await core.killSession('bench', 'bench');
  await core.dispose();

  const fmt = (values) =>
    `${percentile(values, 50).toFixed(1)} / ${percentile(values, 95).toFixed(1)} / ${percentile(values, 99).toFixed(1)} ms`;
  console.log(`\nHangar agent-state benchmark (${ROUNDS} hook events, loopback)\n`);
  console.log(`hook → state in a client's sessions.changed  p50/p95/p99  ${fmt(toUi)}  (target p95 ≤ 1000 ms)`);
  console.log(`  the hook command itself (sh + append)                 ${fmt(hookCost)}`);
  console.log(`reference: the same append seen by fs.watch here         ${fmt(floor)}`);
} finally {
  agent.child.kill();
  // The agent's own tmux server (its socket is named after the data dir, as in host-agent/src/sessions/tmux.ts).
  const socket = tmuxSocketNameOf(data);
  spawnSync('tmux', ['-L', socket, 'kill-server']);
  rmSync(dir, { recursive: true, force: true });
}
