#!/usr/bin/env node
// bench:ui's second reference: the web terminal a user would pick instead of Hangar's, as ttyd or
// wetty are (ttyd is not packaged here). A WebSocket server (ws) pipes bytes to and from a pty
// (node-pty) running `tmux -S <its own socket> attach` to a tmux session that runs the shell the
// Hangar terminal in the bench runs, with the options Hangar's agent sets (its tmux.conf without
// Hangar's hooks), the same TERM and size. The page is echo-reference.mjs's: the same xterm build.
// No core, agent, link or React: what is left is tmux + shell + browser.
//
// Run by run.mjs as its own process (so its CPU is its own, not the bench's):
//   node tmux-reference.mjs <dir> <tmux.conf to copy> <cols> <rows> <trace dir or ->
// prints one JSON line { url, pid, tmuxPid } once it serves; SIGTERM stops it and its tmux server.
// With a trace dir it stamps ref.ws.read, ref.pty.written, ref.pty.read and ref.ws.write (the
// monotonic clock, as HANGAR_TRACE_KEYS's) and writes them to <trace dir>/tmux-ref.trace at exit.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nodePty from 'node-pty';
import { servePage } from './echo-reference.mjs';

const [dir, hangarConf, cols, rows, traceDir] = process.argv.slice(2);
const size = { cols: Number(cols), rows: Number(rows) };
const socket = join(dir, 'tmux-ref.sock');
const conf = join(dir, 'tmux-ref.conf');
// Hangar's server options (status off, window-size latest, escape-time 0, history-limit,
// default-terminal); its hooks (session list changes, bells) are Hangar's own, left out.
writeFileSync(
  conf,
  readFileSync(hangarConf, 'utf8')
    .split('\n')
    .filter((line) => !line.startsWith('set-hook'))
    .join('\n'),
);
const env = { ...process.env, TERM: 'xterm-256color' };
delete env.TMUX;
delete env.TMUX_PANE;
const tmux = (...args) => execFileSync('tmux', ['-u', '-S', socket, '-f', conf, ...args], { env, encoding: 'utf8' });
// The bench's Hangar sessions: `session new … --env 'PS1=$ ' -- bash --norc --noprofile`.
tmux('new-session', '-d', '-s', 'ref', '-x', cols, '-y', rows, '-e', 'PS1=$ ', 'bash', '--norc', '--noprofile');
const tmuxPid = Number(tmux('display-message', '-p', '#{pid}').trim());

const trace = [];
const stamp =
  traceDir && traceDir !== '-'
    ? (hop) => trace.push(`${Number(process.hrtime.bigint()) / 1e6} ref.${hop} 0`)
    : undefined;

const server = await servePage(
  'tmuxref',
  '/tty',
  (ws) => {
    // As ttyd: one tmux client per connection, in a pty of the page's size, its output sent as read.
    const pty = nodePty.spawn('tmux', ['-u', '-S', socket, '-f', conf, 'attach-session', '-t', '=ref'], {
      name: 'xterm-256color',
      cols: size.cols,
      rows: size.rows,
      cwd: dir,
      env,
      encoding: null,
    });
    pty.onData((data) => {
      stamp?.('pty.read');
      stamp?.('ws.write');
      ws.send(data);
    });
    pty.onExit(() => ws.close());
    ws.on('message', (data) => {
      stamp?.('ws.read');
      pty.write(Buffer.from(data));
      stamp?.('pty.written');
    });
    ws.on('close', () => pty.kill('SIGHUP'));
  },
  size,
);
console.log(JSON.stringify({ url: server.url, pid: process.pid, tmuxPid }));

process.once('SIGTERM', () => {
  server.close();
  try {
    tmux('kill-server');
  } catch {
    // Already gone.
  }
  if (stamp) writeFileSync(join(traceDir, 'tmux-ref.trace'), trace.join('\n') + '\n');
  process.exit(0);
});
