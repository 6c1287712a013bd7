#!/usr/bin/env node
// UI benchmark, web mode in Debian's Chromium: time from `hangar up` (what `npm start` runs when
// Electron is absent) to the first interactive frame, keystroke-to-render latency in xterm for a
// remote echo on loopback, the renderer's JS bundle size, and the core's RSS with 10 terminals
// open. Not a test: it prints numbers next to the targets from the issue, and a reference
// measured in the same run (the browser's frame interval: a DOM render cannot beat one frame).
// Per pace it prints the CPU per key of each process on the path (Chromium's by kind, the core,
// its agent, tmux) and what each uses per second idle just before. BENCH_TIMELINE=<dir> writes
// a Chromium trace (devtools.timeline; BENCH_TIMELINE_CATEGORIES to change) of the typing, per
// pace. To measure another build, run this file from a copy of that build's tree. Reference rows:
// the browser's frame interval, the same xterm fed by a local WebSocket echo (echo-reference.mjs), and
// the web terminal a user would pick instead, as ttyd: a WebSocket to a pty running `tmux attach`
// (tmux-reference.mjs; BENCH_TMUX_REF=0 leaves it out), with Hangar's added p50 over it.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { HANGAR, ROOT, loadAverage, percentile, printRows, rssKiB, sleep, threadsCpuMs, wakeUps } from '../support.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from '../../support/chromium.mjs';
import { tmuxSocketNameOf } from '@hangar/shared';
import { mkdirSync, writeFileSync } from 'node:fs';
import { hopTable, readTraces } from '../terminal/hops.mjs';
import { startEchoReference } from './echo-reference.mjs';

const ASSETS = join(ROOT, 'renderer', 'dist', 'assets');
const KEYSTROKES = Number(process.env.BENCH_KEYSTROKES ?? 100);
/**
 * Pauses between a key's echo on screen and the next key: a fast typist and a person's pace, as
 * bench:terminal's (issue 17). Not back to back: typed that way, most echoes were held in the page
 * after the keydown by Chromium's DeferRendererTasksAfterInput (on by default; it defers renderer
 * tasks, the WebSocket message included, until the frame after the input), so such a loop mostly
 * measures the deferral. BENCH_PAUSES=50,200 (ms, comma-separated).
 */
const PACES = (process.env.BENCH_PAUSES ?? '50,200').split(',').map(Number);
const TERMINALS = 10;
/**
 * The embedded agent's default session limit. The 10 terminals of the RSS row: one view of bench-0,
 * the session typed into, and 9 over the other 4, so the timed typing has one view of its session
 * as the references do (a second view doubled tmux's drawing and the page's messages per key).
 */
const SESSIONS = 5;
/** Tab `i`'s session: bench-0 for tab 0 only, the others over bench-1 … bench-(SESSIONS-1). */
const sessionOfTab = (i) => `bench-${i === 0 ? 0 : 1 + ((i - 1) % (SESSIONS - 1))}`;

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-ui-')));
const home = join(dir, 'home');
const env = { ...process.env, HANGAR_HOME: home, HANGAR_LOG_LEVEL: 'warn' };
delete env.TMUX;
const rows = [];
/** The processes whose CPU per key is printed: `hangar up` (the core) and its embedded agent. */
const cpuPids = { core: 0, agent: 0 };
// BENCH_TRACE=1: the core (`hangar up`, process `cli`) and its embedded agent stamp each hop of a
// keystroke (HANGAR_TRACE_KEYS), the page stamps keydown, the WebSocket's sends and messages, the
// echo parsed and rendered; printed after the table as the median time per hop.
const traceDir = process.env.BENCH_TRACE ? join(dir, 'trace') : undefined;
if (traceDir) {
  mkdirSync(traceDir);
  env.HANGAR_TRACE_KEYS = traceDir;
}
/** The page's wall clock (timeOrigin + now) minus the monotonic clock the traced processes stamp. */
const wallMinusMonotonic = () => performance.timeOrigin + performance.now() - Number(process.hrtime.bigint()) / 1e6;
/**
 * The path of a keystroke typed in the page and its echo, in order (see hops.mjs). "side" rows
 * are stamps taken after a write returned: measured from the stamp before the write, off the path
 * (the reader the write woke often ran first on the writer's CPU).
 */
const UI_HOPS = [
  ['ui.ws.send', 'the page sends it on the WebSocket (xterm onData → CoreTerminal → mux)'],
  ['cli.core.ws.read', "the core reads it from the page's socket"],
  ['cli.core.input', "the core's terminal stream has it"],
  ['cli.link.send', 'handed to the link to the agent'],
  ['cli.link.write', 'the transport hands it to the TLS socket (socket.write)'],
  ['cli.link.flushed', 'side: socket.write returned (often after the agent ran)', { from: 'cli.link.write' }],
  ['agent.link.read', 'agent reads it from the socket (after the write began)'],
  ['agent.input', 'the attachment has it'],
  ['agent.pty.written', "side: written to the tmux client's pty", { from: 'agent.input' }],
  ['agent.pty.read', 'the answer read from the pty (tmux client + server + pane)'],
  ['agent.link.write', 'the transport hands it to the TLS socket (socket.write)'],
  ['agent.link.flushed', 'side: socket.write returned (often after the core ran)', { from: 'agent.link.write' }],
  ['cli.link.read', 'the core reads it from the socket (after the write began)'],
  ['cli.core.output', "the core's terminal has it"],
  ['cli.core.ws.write', "the message goes to the page's socket"],
  ['cli.core.ws.written', 'side: that write returned', { from: 'cli.core.ws.write' }],
  ['ui.ws.message', 'a WebSocket message reaches the page (after the write began)'],
  ['ui.parsed', 'xterm parsed the echo'],
  ['ui.frame', 'the next animation frame starts'],
  ['ui.echo', 'the echo is in the DOM (rendered)'],
];

/** tmux-reference.mjs's path: the page's hops, and its server's (`ref.*`) in place of Hangar's. */
const TMUX_REF_HOPS = [
  ['ui.ws.send', 'the page sends it on the WebSocket (xterm onData)'],
  ['ref.ws.read', "the server reads it from the page's socket"],
  ['ref.pty.written', "side: written to the tmux client's pty (node-pty write)", { from: 'ref.ws.read' }],
  ['ref.pty.read', 'the answer read from the pty (tmux client + server + pane)'],
  ['ref.ws.write', "the message goes to the page's socket"],
  ['ui.ws.message', 'a WebSocket message reaches the page (after the write began)'],
  ['ui.parsed', 'xterm parsed the echo'],
  ['ui.frame', 'the next animation frame starts'],
  ['ui.echo', 'the echo is in the DOM (rendered)'],
];

function bundleSize() {
  let raw = 0;
  let gzip = 0;
  for (const name of readdirSync(ASSETS).filter((n) => n.endsWith('.js'))) {
    const bytes = readFileSync(join(ASSETS, name));
    raw += bytes.length;
    gzip += gzipSync(bytes, { level: 9 }).length;
  }
  return { raw, gzip };
}

/** Starts `hangar up` and resolves when it prints the UI address. */
function startStack() {
  const started = performance.now();
  const child = spawn(process.execPath, [HANGAR, 'up'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  // The UI comes up first and the embedded agent after it (hangar up): `localUp` resolves once
  // host "local" can take commands.
  let localIsUp;
  const localUp = new Promise((r) => (localIsUp = r));
  return new Promise((resolveStack, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /(http:\/\/127\.0\.0\.1:\d+\/#token=\S+)/.exec(line);
      if (match) resolveStack({ child, url: match[1], started, printed: performance.now(), localUp });
      if (line.includes('local stack up')) {
        cpuPids.core = child.pid;
        cpuPids.agent = Number(/agent pid (\d+)/.exec(line)[1]);
        localIsUp();
      }
    });
    child.once('exit', (code) => reject(new Error(`hangar up exited with ${code}: ${stderr}`)));
  });
}

/**
 * Runs in every page before its scripts: stamps (wall clock, for the trace) the echo parsed by
 * xterm (the renderer's bench hook), each WebSocket send and each message received.
 */
function pageProbes() {
  window.__parsed = [];
  window.__trace = [];
  /** WebSocket messages sent and received so far (a message is a trip through the network process). */
  window.__counts = { send: 0, message: 0 };
  const wall = () => performance.timeOrigin + performance.now();
  window.hangarBenchHooks = {
    writeParsed: (at) => {
      window.__parsed.push(at);
      window.__trace.push([performance.timeOrigin + at, 'ui.parsed']);
    },
  };
  // The first animation frame that starts after the echo was parsed (xterm's DOM renderer draws in
  // one): splits 'rendered' into waiting for the frame and xterm's drawing in it.
  const raf = window.requestAnimationFrame.bind(window);
  window.requestAnimationFrame = (callback) =>
    raf((now) => {
      window.__trace.push([performance.timeOrigin + performance.now(), 'ui.frame']);
      callback(now);
    });
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    window.__trace.push([wall(), 'ui.ws.send']);
    window.__counts.send++;
    return send.call(this, data);
  };
  const listen = WebSocket.prototype.addEventListener;
  WebSocket.prototype.addEventListener = function (type, listener, options) {
    if (type !== 'message') return listen.call(this, type, listener, options);
    return listen.call(
      this,
      type,
      (event) => {
        window.__trace.push([wall(), 'ui.ws.message']);
        window.__counts.message++;
        const pending = window.__bench?.pending;
        if (pending && pending.message === undefined) pending.message = performance.now();
        return listener(event);
      },
      options,
    );
  };
}

/**
 * Types `KEYSTROKES` keys into the terminal of tab `tabId`, each `pauseMs` after the previous one's
 * echo was rendered, and returns the times keydown → rendered, keydown → parsed and first message → rendered, and the frame
 * intervals seen while it started. Trace events are named `ui.key.<label><pauseMs>` and `ui.echo`.
 */
async function typeInPage(page, pauseMs, tabId, label = '') {
  const pane = page.locator(`#panel-${tabId}`);
  await pane.locator('.xterm-rows').waitFor();
  await pane.locator('textarea').focus();
  // The letters typed below once, untimed: xterm measures a glyph's width the first time it draws
  // it (a forced layout, ~0.25 ms), which a fresh terminal would otherwise pay on the first 26 keys
  // of the first row only. A person's terminal has drawn them long before.
  await pane.locator('textarea').pressSequentially('abcdefghijklmnopqrstuvwxyz');
  await sleep(300);
  await pane.locator('textarea').press('Control+U');
  await sleep(100);
  await page.evaluate(
    ({ tabId, keyEvent }) => {
      const rowsElement = document.querySelector(`#panel-${tabId} .xterm-rows`);
      const bench = { samples: [], parsed: [], page: [], pending: null, frames: [], typed: '', parsedBefore: 0 };
      window.__bench?.stop();
      window.__bench = bench;
      // Rendered = some row now ends with the last few characters typed since the line was cleared.
      const shows = (suffix) =>
        [...rowsElement.children].some((row) => (row.textContent ?? '').replace(/\s+$/, '').endsWith(suffix));
      const onKey = (event) => {
        if (event.ctrlKey) {
          if (event.key.toLowerCase() === 'u') bench.typed = '';
          return;
        }
        if (!/^[a-z]$/.test(event.key)) return;
        bench.typed += event.key;
        bench.pending = { t0: performance.now(), suffix: bench.typed.slice(-8) };
        bench.parsedBefore = window.__parsed.length;
        window.__trace.push([performance.timeOrigin + bench.pending.t0, keyEvent]);
      };
      document.addEventListener('keydown', onKey, true);
      const observer = new MutationObserver(() => {
        const pending = bench.pending;
        if (pending && shows(pending.suffix)) {
          const now = performance.now();
          bench.samples.push(now - pending.t0);
          if (pending.message !== undefined) bench.page.push(now - pending.message);
          window.__trace.push([performance.timeOrigin + now, 'ui.echo']);
          // First write parsed after the keydown (any pane; only this one is being typed into).
          const parsedAt = window.__parsed.slice(bench.parsedBefore).find((at) => at >= pending.t0);
          if (parsedAt !== undefined) bench.parsed.push(parsedAt - pending.t0);
          bench.pending = null;
          bench.waiter?.();
        }
      });
      observer.observe(rowsElement, { subtree: true, childList: true, characterData: true });
      bench.stop = () => {
        document.removeEventListener('keydown', onKey, true);
        observer.disconnect();
      };
      let last = performance.now();
      const frame = (now) => {
        bench.frames.push(now - last);
        last = now;
        if (bench.frames.length < 200) requestAnimationFrame(frame);
      };
      requestAnimationFrame(frame);
    },
    { tabId, keyEvent: `ui.key.${label}${pauseMs}` },
  );
  // The frame loop above runs ~3 s; typing starts after it, on a page that draws only on demand.
  await page.waitForFunction(() => window.__bench.frames.length >= 200, null, { timeout: 20_000 });
  // Per key: the page's main thread busy (Chromium's TaskDuration: its tasks' wall time, which
  // counts time the thread was preempted on a loaded machine), the CPU of the core, its agent,
  // Chromium's processes (the renderer's main thread apart) and tmux.
  const metrics = await page.context().newCDPSession(page);
  await metrics.send('Performance.enable');
  const cpuNow = async () => {
    const { metrics: list } = await metrics.send('Performance.getMetrics');
    const task = list.find((m) => m.name === 'TaskDuration').value * 1e3;
    return {
      task,
      core: threadsCpuMs(cpuPids.core),
      // No agent on tmux-reference.mjs's path: NaN, printed as —.
      agent: cpuPids.agent ? threadsCpuMs(cpuPids.agent) : NaN,
      ...otherCpuMs(),
      coreWoken: wakeUps(cpuPids.core),
      agentWoken: cpuPids.agent ? wakeUps(cpuPids.agent) : NaN,
    };
  };
  // The page's main thread at rest for 2 s, typing nothing: what runs there all the time.
  const idleBefore = await cpuNow();
  await sleep(2000);
  const idleAfter = await cpuNow();
  const idle = Object.fromEntries(Object.keys(idleBefore).map((k) => [k, (idleAfter[k] - idleBefore[k]) / 2]));
  // BENCH_TIMELINE=<dir>: a trace of the page's threads while it types (devtools.timeline), per pace.
  const timeline = process.env.BENCH_TIMELINE ? await page.context().newCDPSession(page) : undefined;
  const timelineEvents = [];
  if (timeline) {
    timeline.on('Tracing.dataCollected', ({ value }) => timelineEvents.push(...value));
    await timeline.send('Tracing.start', {
      categories:
        process.env.BENCH_TIMELINE_CATEGORIES ??
        'devtools.timeline,disabled-by-default-devtools.timeline,toplevel,v8.execute,blink,cc,gpu',
      transferMode: 'ReportEvents',
    });
  }
  const cpuBefore = await cpuNow();
  const countsBefore = await page.evaluate(() => ({ ...window.__counts }));
  // BENCH_PROFILE=<dir>: a CPU profile of the page while it types (50 µs samples), per pace.
  const profiler = process.env.BENCH_PROFILE ? await page.context().newCDPSession(page) : undefined;
  if (profiler) {
    await profiler.send('Profiler.enable');
    await profiler.send('Profiler.setSamplingInterval', { interval: 50 });
    await profiler.send('Profiler.start');
  }
  for (let i = 0; i < KEYSTROKES; i++) {
    if (i > 0 && i % 60 === 0) {
      await page.keyboard.press('Control+U'); // clear the line before it wraps
      await sleep(50);
    }
    await sleep(pauseMs);
    // Resolved by the page's observer when the echo is rendered: nothing polls in the page (a
    // 1 ms poll loop there ran tasks beside the ones measured).
    const rendered = page.evaluate(
      (n) =>
        new Promise((resolve) => {
          const check = () => (window.__bench.samples.length >= n ? resolve(true) : (window.__bench.waiter = check));
          check();
        }),
      i + 1,
    );
    await page.keyboard.press(String.fromCharCode(97 + (i % 26)));
    const timedOut = await Promise.race([rendered.then(() => false), sleep(5000).then(() => true)]);
    if (timedOut) {
      const screen = await pane.locator('.xterm-rows').textContent();
      throw new Error(`keystroke ${i} never rendered; screen: ${screen}`);
    }
  }
  const cpuAfter = await cpuNow();
  const countsAfter = await page.evaluate(() => ({ ...window.__counts }));
  const messages = {
    send: (countsAfter.send - countsBefore.send) / KEYSTROKES,
    message: (countsAfter.message - countsBefore.message) / KEYSTROKES,
  };
  if (timeline) {
    const done = new Promise((r) => timeline.once('Tracing.tracingComplete', r));
    await timeline.send('Tracing.end');
    await done;
    writeFileSync(join(process.env.BENCH_TIMELINE, `page-${label}${pauseMs}.json`), JSON.stringify(timelineEvents));
    await timeline.detach();
  }
  if (profiler) {
    const { profile } = await profiler.send('Profiler.stop');
    writeFileSync(join(process.env.BENCH_PROFILE, `page-${label}${pauseMs}.cpuprofile`), JSON.stringify(profile));
    await profiler.detach();
  }
  await metrics.detach();
  const cpu = Object.fromEntries(Object.keys(cpuBefore).map((k) => [k, (cpuAfter[k] - cpuBefore[k]) / KEYSTROKES]));
  return {
    ...(await page.evaluate(() => ({
      samples: window.__bench.samples,
      parsed: window.__bench.parsed,
      page: window.__bench.page,
      frames: window.__bench.frames,
    }))),
    cpu,
    idle,
    messages,
  };
}

/**
 * The rows of one typing run. `names`: what the core and agent columns measure (tmux-reference.mjs's
 * server in the core's, no agent).
 */
function echoRows({ samples, parsed, page, cpu, idle, messages }, what, names = ['core', 'agent']) {
  const ms = (list) =>
    `${percentile(list, 50).toFixed(1)} / ${percentile(list, 90).toFixed(1)} / ${percentile(list, 99).toFixed(1)} ms`;
  rows.push([`keystroke → echo parsed by xterm p50 / p90 / p99, ${what}`, ms(parsed)]);
  rows.push([`keystroke → rendered p50 / p90 / p99, ${what}`, `${ms(samples)}  (target p50 ≤ 5 ms)`]);
  // The page's own part, less shaken by the load on the other processes than the whole path.
  rows.push([`first message after the key → rendered p50 / p90 / p99, ${what}`, ms(page)]);
  rows.push([
    `WebSocket messages per key: sent / received by the page, ${what}`,
    `${messages.send.toFixed(2)} / ${messages.message.toFixed(2)}`,
  ]);
  rows.push([
    `ms per key: page main thread busy (its tasks' wall time) / ${names[0]} CPU / ${names[1]} CPU, ${what}`,
    `${cpu.task.toFixed(3)} / ${cpu.core.toFixed(3)} / ${dash(cpu.agent, 3)}; main-thread wake-ups ${names[0]} ` +
      `${cpu.coreWoken.toFixed(2)}, ${names[1]} ${dash(cpu.agentWoken, 2)}  (load ${loadAverage()})`,
  ]);
  rows.push([
    `CPU ms per key: Chromium's renderers (main threads) / renderers (all) / browser / GPU / network+utility, tmux, ${what}`,
    `${cpu.rendererMain.toFixed(3)} / ${cpu.renderers.toFixed(3)} / ${cpu.browser.toFixed(3)} / ${cpu.gpu.toFixed(3)} / ` +
      `${cpu.network.toFixed(3)}, ` +
      `${cpu.tmux.toFixed(3)}`,
  ]);
  rows.push([
    `ms per second idle: page main thread busy / ${names[0]} CPU / ${names[1]} CPU, before the ${what.split(',')[0]}`,
    `${idle.task.toFixed(3)} / ${idle.core.toFixed(3)} / ${dash(idle.agent, 3)}; Chromium's renderers ` +
      `${idle.rendererMain.toFixed(3)} (main threads) / ${idle.renderers.toFixed(3)} (all), GPU ${idle.gpu.toFixed(3)}, browser ${idle.browser.toFixed(3)}`,
  ]);
}

const dash = (value, digits) => (Number.isNaN(value) ? '—' : value.toFixed(digits));

/** CPU time (ms) thread `tid` of process `pid` has used so far (schedstat, ns). */
const threadCpuMs = (pid, tid) =>
  Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;

/** The pids under `root` (by /proc's parent links), with each one's command line. */
function descendants(root) {
  const parents = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // Gone meanwhile.
    }
  }
  const found = [];
  const walk = (pid) => {
    for (const [child, parent] of parents) {
      if (parent !== pid) continue;
      let cmdline = '';
      try {
        cmdline = readFileSync(`/proc/${child}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      found.push({ pid: child, cmdline });
      walk(child);
    }
  };
  walk(root);
  return found;
}

/**
 * CPU (ms, all threads) so far of the other processes on a key's path: Chromium's by kind (the
 * browser, its renderers, the GPU process, the network service and other utilities) and the
 * agent's tmux server. Chromium's are this script's descendants.
 */
function otherCpuMs() {
  const out = { browser: 0, renderers: 0, rendererMain: 0, gpu: 0, network: 0, tmux: 0 };
  for (const { pid, cmdline } of descendants(process.pid)) {
    if (!/chrom/i.test(cmdline.split('\0')[0])) continue;
    const type = /--type=([\w-]+)/.exec(cmdline)?.[1];
    const kind =
      type === undefined
        ? 'browser'
        : type === 'renderer'
          ? 'renderers'
          : type === 'gpu-process'
            ? 'gpu'
            : type === 'utility' && /network/i.test(cmdline)
              ? 'network'
              : type === 'zygote'
                ? 'browser'
                : 'network';
    try {
      out[kind] += threadsCpuMs(pid);
      // A renderer's main thread (its tid is the pid): the page's JS, style, layout and paint.
      if (kind === 'renderers') out.rendererMain += threadCpuMs(pid, pid);
    } catch {
      // Gone meanwhile.
    }
  }
  if (tmuxPid) {
    try {
      out.tmux = threadsCpuMs(tmuxPid);
    } catch {
      // The server is gone.
    }
  }
  return out;
}
let tmuxPid = 0;

const hangar = (...args) => execFileSync(process.execPath, [HANGAR, ...args], { env, encoding: 'utf8' });

let stack;
let browser;
let refBrowser;
/** tmux-reference.mjs's page, when it ran (its trace is written with the others). */
let tmuxRefPage;
try {
  if (!statSync(ASSETS, { throwIfNoEntry: false })) throw new Error('renderer not built; run: npm run build');
  const bundle = bundleSize();
  rows.push([
    'renderer JS bundle (all chunks)',
    `${(bundle.gzip / 1024).toFixed(0)} KiB gzip, ${(bundle.raw / 1024).toFixed(0)} KiB raw  (target ≤ 1.5 MB gzip)`,
  ]);

  // The browser is the user's, already running: only Hangar's start is timed.
  // BENCH_CHROMIUM_ARGS: more flags, e.g. --disable-features=DeferRendererTasksAfterInput.
  const extraArgs = process.env.BENCH_CHROMIUM_ARGS?.split(' ').filter(Boolean) ?? [];
  browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...extraArgs] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.addInitScript(pageProbes);
  // First start ever (pairs the embedded agent), then a normal start: the target is for the latter.
  const timeStart = async () => {
    const started = await startStack();
    await page.goto(started.url);
    const firstHost = page
      .getByRole('listitem', { name: /^local, / })
      .getByRole('button')
      .first();
    await firstHost.waitFor();
    await firstHost.focus();
    return { stack: started, interactive: performance.now() };
  };
  const cold = await timeStart();
  const exited = new Promise((r) => cold.stack.child.once('exit', r));
  cold.stack.child.kill('SIGINT');
  await exited;
  const warm = await timeStart();
  stack = warm.stack;
  rows.push(['hangar up → address printed', `${(stack.printed - stack.started).toFixed(0)} ms`]);
  rows.push([
    'first start (pairs "local") → host list interactive',
    `${(cold.interactive - cold.stack.started).toFixed(0)} ms`,
  ]);
  rows.push([
    'hangar up → host list interactive',
    `${(warm.interactive - stack.started).toFixed(0)} ms  (target ≤ 1500 ms)`,
  ]);

  // Sessions with a bare prompt, and 10 remembered tabs: the reload opens them all.
  await stack.localUp;
  for (let i = 0; i < SESSIONS; i++) {
    hangar('session', 'new', 'local', '--name', `bench-${i}`, '--env', 'PS1=$ ', '--', 'bash', '--norc', '--noprofile');
  }
  tmuxPid = Number(
    execFileSync('tmux', ['-L', tmuxSocketNameOf(join(home, 'agent')), 'display-message', '-p', '#{pid}'], {
      env,
      encoding: 'utf8',
    }).trim(),
  );
  const tabs = Array.from({ length: TERMINALS }, (_, i) => ({
    id: `bench${i}`,
    title: `bench ${i}`,
    panes: [{ host: 'local', session: sessionOfTab(i) }],
  }));
  await page.evaluate((saved) => localStorage.setItem('hangar.tabs', JSON.stringify(saved)), {
    tabs,
    active: 'bench0',
  });
  await page.reload();
  await page
    .locator('.xterm-rows')
    .nth(TERMINALS - 1)
    .waitFor({ state: 'attached' });
  await page.waitForFunction(() => document.querySelectorAll('.terminal-overlay').length === 0, null, {
    timeout: 20_000,
  });
  await sleep(1000);
  const coreRss = rssKiB(stack.child.pid);
  rows.push([
    `core RSS, ${TERMINALS} terminals open over ${SESSIONS} sessions`,
    `${(coreRss / 1024).toFixed(1)} MB  (target ≤ 150 MB)`,
  ]);

  // Keystroke → echo → rendered cell, timed inside the page (keydown to the DOM row changing), at
  // each pace; then the same in a second browser without Chromium's DeferRendererTasksAfterInput
  // (what the Electron window runs: electron/main), the reference for what that deferral costs.
  let frames = [];
  /** Hangar's keystroke → rendered p50 per pace, for its added time over tmux-reference.mjs's. */
  const hangarRendered = new Map();
  for (const pace of PACES) {
    const typed = await typeInPage(page, pace, 'bench0');
    frames = typed.frames;
    hangarRendered.set(pace, percentile(typed.samples, 50));
    echoRows(typed, `${pace} ms pauses, Chromium's defaults (web mode), one view of the typed session`);
  }
  // The floor under Hangar's path: the same xterm in a page of the same browser, fed by a trivial
  // WebSocket echo server (echo-reference.mjs), at the same paces. BENCH_ECHO_REF=0 leaves it out.
  if (process.env.BENCH_ECHO_REF !== '0') {
    const echo = await startEchoReference('echo');
    try {
      const echoPage = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await echoPage.addInitScript(pageProbes);
      await echoPage.goto(echo.url);
      await echoPage.waitForFunction(() => document.body.dataset.ready === '1', null, { timeout: 20_000 });
      for (const pace of PACES) {
        echoRows(
          await typeInPage(echoPage, pace, 'echo', 'echo'),
          `${pace} ms pauses, reference: xterm fed by a local WebSocket echo (no core, agent, tmux)`,
        );
      }
      await echoPage.close();
    } finally {
      echo.close();
    }
  }
  // The web terminal a user would pick instead (as ttyd): the same xterm page on a WebSocket to a
  // pty running a tmux client of its own tmux server (the options Hangar's agent sets), the shell
  // and size of Hangar's bench-0, in the same browser, typed the same way (tmux-reference.mjs).
  // What Hangar adds over it is its own part: core, agent, link, React. BENCH_TMUX_REF=0 leaves it out.
  if (process.env.BENCH_TMUX_REF !== '0') {
    const hangarTmux = ['-L', tmuxSocketNameOf(join(home, 'agent'))];
    const [cols, lines] = execFileSync(
      'tmux',
      [...hangarTmux, 'list-sessions', '-F', '#{session_name} #{window_width} #{window_height}'],
      { env, encoding: 'utf8' },
    )
      .split('\n')
      .find((line) => line.split(' ')[0].endsWith('bench-0'))
      .split(' ')
      .slice(1);
    const server = spawn(
      process.execPath,
      [
        join(import.meta.dirname, 'tmux-reference.mjs'),
        dir,
        join(home, 'agent', 'sessions', 'tmux.conf'),
        cols,
        lines,
        traceDir ?? '-',
      ],
      { env, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((r) => server.once('exit', r));
    try {
      const started = await Promise.race([
        new Promise((resolve) => createInterface({ input: server.stdout }).once('line', (l) => resolve(JSON.parse(l)))),
        exited.then((code) => Promise.reject(new Error(`tmux-reference.mjs exited with ${code}`))),
      ]);
      tmuxRefPage = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await tmuxRefPage.addInitScript(pageProbes);
      await tmuxRefPage.goto(started.url);
      await tmuxRefPage.waitForFunction(() => document.body.dataset.ready === '1', null, { timeout: 20_000 });
      await tmuxRefPage.locator('#panel-tmuxref .xterm-rows').getByText('$').first().waitFor({ timeout: 20_000 });
      const saved = { ...cpuPids, tmuxPid };
      Object.assign(cpuPids, { core: started.pid, agent: 0 });
      tmuxPid = started.tmuxPid;
      try {
        for (const pace of PACES) {
          const typed = await typeInPage(tmuxRefPage, pace, 'tmuxref', 'tmux');
          const what = `${pace} ms pauses, reference: the same xterm on a WebSocket to a pty running tmux attach (as ttyd), its only client`;
          echoRows(typed, what, ['server (ws + node-pty)', 'agent (none)']);
          const ref = percentile(typed.samples, 50);
          const own = hangarRendered.get(pace);
          if (own !== undefined)
            rows.push([
              `Hangar's added keystroke → rendered p50 over it, ${pace} ms pauses (core + agent + link + React; one view each, Hangar's session also piped to its log)`,
              `${(own - ref).toFixed(1)} ms (Hangar ${own.toFixed(1)} / reference ${ref.toFixed(1)} ms = ${(own / ref).toFixed(2)}x)`,
            ]);
        }
      } finally {
        Object.assign(cpuPids, { core: saved.core, agent: saved.agent });
        tmuxPid = saved.tmuxPid;
      }
    } finally {
      server.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
    }
  }
  // BENCH_REF=0: only the first browser (on a loaded machine the second one's tab is where runs
  // most often time out).
  let refPage;
  /** The first page's trace events, read before it closes (BENCH_TRACE). */
  let pageTrace;
  if (process.env.BENCH_REF !== '0') {
    // The first page closes first (its 10 views with it): this page's typing, too, has one view of
    // bench-0, its own.
    if (traceDir) pageTrace = await page.evaluate(() => window.__trace);
    await page.close();
    refBrowser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [...CHROMIUM_ARGS, ...extraArgs, '--disable-features=DeferRendererTasksAfterInput'],
    });
    refPage = await refBrowser.newPage({ viewport: { width: 1280, height: 800 } });
    await refPage.addInitScript(pageProbes);
    await refPage.goto(stack.url);
    await refPage.evaluate((saved) => localStorage.setItem('hangar.tabs', JSON.stringify(saved)), {
      tabs: [{ id: 'ref0', title: 'ref 0', panes: [{ host: 'local', session: 'bench-0' }] }],
      active: 'ref0',
    });
    await refPage.reload();
    await refPage.locator('#panel-ref0 .xterm-rows').waitFor();
    await refPage.waitForFunction(() => document.querySelectorAll('.terminal-overlay').length === 0, null, {
      timeout: 20_000,
    });
    for (const pace of PACES) {
      echoRows(
        await typeInPage(refPage, pace, 'ref0', 'ref'),
        `${pace} ms pauses, no input deferral (as Electron), one view of the typed session`,
      );
    }
  }
  if (traceDir) {
    const offset = wallMinusMonotonic();
    for (const [name, traced] of [
      ['page', pageTrace ? { evaluate: async () => pageTrace } : page],
      ...(refPage ? [['ref-page', refPage]] : []),
      ...(tmuxRefPage ? [['tmux-ref-page', tmuxRefPage]] : []),
    ]) {
      const events = await traced.evaluate(() => window.__trace);
      const lines = events.map(([at, event]) => `${(at - offset).toFixed(4)} ${event} 0`);
      writeFileSync(join(traceDir, `${name}.trace`), lines.join('\n') + '\n');
    }
  }
  rows.push(['reference: browser frame interval p50', `${percentile(frames.slice(1), 50).toFixed(1)} ms`]);
} finally {
  await browser?.close();
  await refBrowser?.close();
  if (stack) {
    const exited = new Promise((r) => stack.child.once('exit', r));
    stack.child.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
  }
  const socket = tmuxSocketNameOf(join(home, 'agent'));
  try {
    execFileSync('tmux', ['-L', socket, 'kill-server'], { env, stdio: 'ignore' });
  } catch {
    // No tmux server left to stop.
  }
  if (traceDir) {
    const paces = [...PACES.map(String), ...(refBrowser ? PACES.map((p) => `ref${p}`) : [])];
    const table = hopTable(readTraces(traceDir), paces, UI_HOPS, 'ui');
    const fmt = (v) => (v === undefined ? '—' : v.toFixed(3));
    console.log(`\nkeystroke in the page, per hop: median ms after the previous hop (pauses ${paces.join(' | ')};`);
    console.log('ref: no input deferral)\n');
    console.log(`| hop | what | ${paces.join(' | ')} |\n|---|---|${paces.map(() => '---').join('|')}|`);
    for (const [hop, what, ...ms] of table) console.log(`| ${hop} | ${what} | ${ms.map(fmt).join(' | ')} |`);
    if (tmuxRefPage) {
      const refPaces = PACES.map((p) => `tmux${p}`);
      console.log(
        `\nthe reference (tmux-reference.mjs, as ttyd), per hop: median ms after the previous hop (${refPaces.join(' | ')})\n`,
      );
      console.log(`| hop | what | ${refPaces.join(' | ')} |\n|---|---|${refPaces.map(() => '---').join('|')}|`);
      for (const [hop, what, ...ms] of hopTable(readTraces(traceDir), refPaces, TMUX_REF_HOPS, 'ui'))
        console.log(`| ${hop} | ${what} | ${ms.map(fmt).join(' | ')} |`);
    }
  }
  // The agent may still be writing its session files as it exits: a failed removal is not the
  // benchmark's result (it lost the whole run's table before).
  if (!process.env.BENCH_TRACE_KEEP) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 10 });
    } catch (error) {
      console.error(`could not remove ${dir}: ${error.message}`);
    }
  } else console.log(`kept ${dir}`);
}

printRows(`\nHangar UI benchmark (web mode, Chromium headless, ${KEYSTROKES} keystrokes per pace)\n`, rows);
