import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateTlsCert } from '../../host-agent/src/identity/tls.js';
import { firewalledHost, type FirewalledHost } from '../support/firewalled-host.js';
import { firewalledStack } from '../support/firewalled-stack.js';
import { ticksDrawn } from '../support/ticking-terminal.js';
import { spliceUpgrade } from '../../relay/test/support/splice-upgrade.js';
import { runJob } from '../support/natlab.js';
import { dirFor, useCleanups } from '../support/cleanups.js';
import { RelayDouble } from '../support/relay-double.js';
import { startServingCli } from '../support/serving-cli.js';
import { AttachedCli } from '../support/pty-client.js';
import { BASH, hangar as hangarCli, startAgentProcess, tmux, type AgentProcess } from '../support/processes.js';
import { hostsLs, loginCli, relayFor, signupCli, startTestRelayProcess } from '../support/relay-stack.js';

/**
 * The relayed path, end to end: a real relay, a real agent in a network namespace behind a
 * firewall that lets nothing in (so no address it publishes answers), the hangar command here.
 * The relay splices the device's connection with one the agent opens, and the same end-to-end
 * TLS link runs inside.
 */

/**
 * A command's first link to the host races its addresses, WebRTC (0.75 s later) and the splice
 * (1.5 s after that; with UDP blocked WebRTC never opens): a few seconds, but a loaded CI machine
 * can stretch a command past the support helper's 20 s.
 */
function hangar(home: string, args: string[], timeoutMs = 60_000) {
  return hangarCli(home, args, timeoutMs);
}

/** An attach links first: its addresses, WebRTC and the splice, raced (a few seconds; generous for a loaded machine). */
const ATTACH_MS = 30_000;

const cleanups = useCleanups();
const dir = (prefix: string) => dirFor(cleanups, prefix);

// WebRTC is left out of the commands' dial order (README: HANGAR_WEBRTC=off) but in two tests (see
// withWebRtc): the firewall drops UDP, so it could never link here, and each command would start
// the splice 1.5 s behind it (a refused splice would wait for its 5 s of ICE). What the others show
// goes through the addresses and the splice, which race as before.
process.env['HANGAR_WEBRTC'] = 'off';

/** WebRTC raced again, as a command does by default, till the test ends. */
function withWebRtc() {
  delete process.env['HANGAR_WEBRTC'];
  cleanups.push(() => void (process.env['HANGAR_WEBRTC'] = 'off'));
}

/** How often the agent was asked for a relayed link (its log says so at info). */
function spliceRequests(agent: AgentProcess): number {
  return agent
    .stderr()
    .split('\n')
    .filter((line) => line.includes('a device asked for a relayed link')).length;
}

/** A one-line HTTP server in the host's namespace, answering the value of `body` (JavaScript) on 127.0.0.1 there. */
async function devServerIn(net: FirewalledHost, body: string): Promise<number> {
  const child: ChildProcess = spawn(net.wrapper[0]!, [
    ...net.wrapper.slice(1),
    process.execPath,
    '-e',
    `const body = ${body}; require('http').createServer((q, s) => s.end(body)).listen(0, '127.0.0.1', function () { console.log(this.address().port) })`,
  ]);
  cleanups.push(() => child.kill());
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('dev server did not start in 10 s')), 10_000);
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve(Number(line));
    });
  });
}

/** Offers `port` on mini as a preview and opens it here (`hangar preview open`, ended with the test): its local URL. */
async function openPreview(laptop: string, port: number): Promise<string> {
  const added = await hangar(laptop, ['preview', 'add', 'mini', String(port)]);
  expect(added.code, added.stderr).toBe(0);
  const preview = await startServingCli(
    laptop,
    ['preview', 'open', 'mini', String(port)],
    /at (http:\/\/localhost:\d+\/)/,
    'SIGINT',
  );
  cleanups.push(() => preview.stop());
  return preview.url;
}

/** tcpdump of every TCP segment to or from the relay's port, on every interface (lo and the veth). */
async function capture(port: number): Promise<{ stop: () => Promise<Buffer> }> {
  const child = spawn('tcpdump', ['-i', 'any', '-U', '-s', '0', '-w', '-', `tcp port ${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('tcpdump did not start in 10 s')), 10_000);
    child.stderr.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const stop = async () => {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGINT');
    await exited;
    return Buffer.concat(chunks);
  };
  cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
  return { stop };
}

/** The device's access token, as its core keeps it (for asking the relay by hand). */
function accessToken(home: string): string {
  const db = new Database(join(home, 'hangar.db'), { readonly: true });
  try {
    return (db.prepare('SELECT access_token FROM relay_account').get() as { access_token: string }).access_token;
  } finally {
    db.close();
  }
}

/** A device's splice request made by hand: the relay's status and error body. */
async function askSplice(relayUrl: string, token: string, hostId: string): Promise<{ status: number; body: string }> {
  const answer = await spliceUpgrade(relayUrl, '/v1/splice', {
    authorization: `Bearer ${token}`,
    'hangar-host': hostId,
  });
  if (!('socket' in answer)) return answer;
  answer.socket.destroy();
  return { status: 101, body: '' };
}

describe('the relayed path (splice)', { timeout: 180_000 }, () => {
  // One relay, laptop and firewalled host for these: each builds on nothing the others did (names
  // and counts are their own), and a stack takes a loaded CI machine 10-20 s to build. The relay
  // killed goes last: the others need it as it was made. Its account's relayed bytes are held to
  // 1 MiB/s (2 s of burst) for the byte rate's case; the others carry a few KiB each.
  describe('on one stack, built once', () => {
    const sharedCleanups = useCleanups(afterAll);
    let stack: Awaited<ReturnType<typeof firewalledStack>>;
    const rate = 1024 * 1024;
    beforeAll(async () => {
      stack = await firewalledStack(sharedCleanups, { relayArgs: ['--splice-rate', String(rate)] });
    });

    it('a host none of whose addresses answers is reached through the relay: sessions and attach; hosts ls says relayed', async () => {
      const { laptop, agent } = stack;
      // What it published is its address in its own namespace: nothing answers there from here.
      const listed = (await hostsLs(laptop)).find((h) => h.name === 'mini')!;
      expect(listed.address).toBe(`127.0.0.1:${agent.port}`);

      // The first link pairs with the enrollment line's secret, inside the splice.
      const made = await hangar(laptop, ['session', 'new', 'mini', '--name', 'work', ...BASH]);
      expect(made.stderr).toBe('');
      expect(made.code).toBe(0);
      const sessions = await hangar(laptop, ['session', 'ls', 'mini', '--json']);
      expect(sessions.code, sessions.stderr).toBe(0);
      expect(
        (JSON.parse(sessions.stdout) as { sessions: { name: string }[] }[])[0]!.sessions.map((s) => s.name),
      ).toEqual(['work']);
      expect((await hostsLs(laptop)).find((h) => h.name === 'mini')).toMatchObject({
        status: 'online',
        via: 'relayed',
      });
      expect(agent.stderr()).toMatch(/a device asked for a relayed link/);

      const attached = new AttachedCli(laptop, ['mini', 'work']);
      cleanups.push(() => attached[Symbol.asyncDispose]());
      await attached.waitForText('$ ', ATTACH_MS);
      attached.type('echo rel""ayed\r');
      await attached.waitForText(/^relayed\s*$/m);
      attached.type('\x1d');
      expect(await attached.waitForExit()).toBe(0);
    });

    it('a command whose WebRTC attempt failed (UDP blocked) and that linked through the splice exits 0, never by a signal, every time', async () => {
      // It used to die now and then with SIGSEGV at exit, inside node-datachannel's cleanup(): a data
      // channel of the failed attempt, collected with no closed listener, left a dangling pointer
      // there (webrtc-exit.test.ts has the details). Whether that happened depended on the collector
      // running before exit: here a preloaded module runs it every 250 ms, so it always does.
      const { laptop, agent } = stack;
      // About the WebRTC attempt itself.
      withWebRtc();
      const preload = join(dir('gc-often'), 'gc-often.mjs');
      writeFileSync(preload, 'setInterval(() => globalThis.gc(), 250).unref();\n');
      const before = process.env.NODE_OPTIONS;
      process.env.NODE_OPTIONS = `--expose-gc --import ${preload}`; // the hangar commands below inherit it
      cleanups.push(() =>
        before === undefined ? delete process.env.NODE_OPTIONS : (process.env.NODE_OPTIONS = before),
      );
      const runs: string[] = [];
      for (let i = 0; i < 2; i++) {
        const job = await runJob((args) => hangar(laptop, args), `job-through-relay-${i}`);
        const listed = await hangar(laptop, ['session', 'ls', 'mini']);
        expect(listed.stderr).not.toMatch(/killed by/);
        expect(listed.code, listed.stderr).toBe(0);
        runs.push(job.stdout, listed.stdout);
      }
      // Each of them tried WebRTC (the agent answered its offer; the channel never opened: the
      // device closed its attempt once the splice won, and the agent gives up 5 s after answering).
      const answered = () =>
        agent
          .stderr()
          .split('\n')
          .filter((line) => line.includes('WebRTC link not opened')).length;
      const by = Date.now() + 15_000;
      while (answered() < 4 && Date.now() < by) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(answered()).toBeGreaterThanOrEqual(4);
      expect(spliceRequests(agent)).toBeGreaterThanOrEqual(4);
      expect(runs).toHaveLength(4);
    });

    it('a canary typed into the terminal and served by a preview never crosses the relay in clear', async () => {
      // Everything a default command sends the relay is captured, its WebRTC signaling too.
      withWebRtc();
      const { net, relay, laptop } = stack;
      const canary = `CANARY${Math.random().toString(36).slice(2, 12).toUpperCase()}`;
      const devPort = await devServerIn(net, JSON.stringify(`<p>${canary}</p>`));
      const made = await hangar(laptop, ['session', 'new', 'mini', '--name', 'secret', ...BASH]);
      expect(made.code, made.stderr).toBe(0);
      const wire = await capture(relay.port);

      const attached = new AttachedCli(laptop, ['mini', 'secret']);
      cleanups.push(() => attached[Symbol.asyncDispose]());
      await attached.waitForText('$ ', ATTACH_MS);
      attached.type(`echo ${canary}\r`);
      await attached.waitForText(new RegExp(`^${canary}$`, 'm'));
      const page = await fetch(await openPreview(laptop, devPort));
      expect(await page.text()).toContain(canary);
      attached.type('\x1d');
      expect(await attached.waitForExit()).toBe(0);

      const bytes = await wire.stop();
      // The capture holds the splices (their upgrades are in clear) and what they carried...
      expect(bytes.includes(Buffer.from('hangar-splice/1'))).toBe(true);
      expect(bytes.length).toBeGreaterThan(20_000);
      // ...and not the canary, nor the command typed, in either direction.
      expect(bytes.includes(Buffer.from(canary))).toBe(false);
      expect(bytes.includes(Buffer.from(`echo ${canary.slice(0, 6)}`))).toBe(false);
      const metrics = await (await fetch(`${relay.url}/metrics`)).text();
      expect(metrics).toMatch(/hangar_relay_spliced_bytes_total\{direction="to_device"\} [1-9]/);
    });

    it('a device of another account cannot splice to the host: refused, and the agent is never asked', async () => {
      const { relay, laptop, agent } = stack;
      const hostId = (await hostsLs(laptop)).find((h) => h.name === 'mini')!.account!.host_id;
      // hosts ls may itself have linked through the relay (its probe waits for an online host).
      const asked = spliceRequests(agent);
      const stranger = dir('stranger');
      expect((await signupCli(stranger, relay.url, 'someone-else@example.com')).code).toBe(0);
      expect((await hostsLs(stranger)).map((h) => h.name)).toEqual([]);

      const refused = await askSplice(relay.url, accessToken(stranger), hostId);
      expect(refused.status).toBe(404);
      expect(JSON.parse(refused.body)).toMatchObject({
        error: { code: 'E_NOT_FOUND', message: `no host ${hostId} in this account` },
      });
      // Nor can a computer of the same account that no trusted one approved yet.
      const phone = dir('phone');
      expect((await loginCli(phone, relay.url, 'me@example.com', 'phone')).code).toBe(0);
      const pending = await askSplice(relay.url, accessToken(phone), hostId);
      expect(pending.status).toBe(403);
      expect(JSON.parse(pending.body)).toMatchObject({
        error: { code: 'E_FORBIDDEN', message: expect.stringMatching(/not approved on its account yet/) },
      });
      // Neither refusal reached the agent; a splice of the host's own account afterwards does.
      expect(spliceRequests(agent)).toBe(asked);
      expect((await hangar(laptop, ['session', 'ls', 'mini'])).code).toBe(0);
      expect(spliceRequests(agent)).toBe(asked + 1);
    });

    it("a paired host whose address another machine's agent now answers is still reached through the relay, with the same pins", async () => {
      // The host published 127.0.0.1:<port> in its own namespace; here another agent takes that port
      // (as a busy CI machine once did by chance, or a LAN address seen from another network).
      const { laptop, agent } = stack;
      const decoy = await startAgentProcess(dir('decoy'), { port: agent.port });
      cleanups.push(() => decoy.stop());
      const asked = spliceRequests(agent);
      const listed = await hangar(laptop, ['session', 'ls', 'mini', '--json']);
      expect(listed.code, listed.stderr).toBe(0);
      expect(JSON.parse(listed.stdout)).toHaveLength(1);
      expect(spliceRequests(agent)).toBe(asked + 1);
      expect((await hostsLs(laptop)).find((h) => h.name === 'mini')).toMatchObject({
        status: 'online',
        via: 'relayed',
      });
    });

    it("the account's byte rate holds a download to it: slower, never cut", async () => {
      const { net, laptop, relay } = stack;
      const size = 8 * 1024 * 1024;
      const devPort = await devServerIn(net, `'x'.repeat(${size})`);
      const url = await openPreview(laptop, devPort);
      const began = Date.now();
      const body = await (await fetch(url)).text();
      const seconds = (Date.now() - began) / 1000;
      console.log(`[relay-splice] 8 MiB through a splice limited to 1 MiB/s (2 s of burst): ${seconds.toFixed(1)} s`);
      expect(body.length).toBe(size);
      // 8 MiB at 1 MiB/s after a 2 MiB burst: at least 6 s (a little less for what was in flight).
      expect(seconds).toBeGreaterThan(5);
      const metrics = await (await fetch(`${relay.url}/metrics`)).text();
      const bytes = Number(/hangar_relay_spliced_bytes_total\{direction="to_device"\} (\d+)/.exec(metrics)![1]);
      expect(bytes).toBeGreaterThan(size);
    });

    // Last on this stack: it kills the relay (and starts it again on its port, till the stack ends).
    it('the relay killed mid-splice: the terminal reconnects by itself once it is back, nothing lost or doubled', async () => {
      // Ticks are counted as test/support's ticks counts them: also a line tmux drew with others
      // at once after a scroll (ESC [ K before its CR LF) or first in a repaint. A count of plain
      // lines alone missed such a tick, delivered once and in order (seen with a link cut
      // mid-ticks), and is taken to be why tick-80 went missing once without WebRTC (1 run of 2;
      // 0 of 20 since, on this case's own copy).
      const { relay, relayData, laptop, net, agent, shell } = stack;
      const asked = spliceRequests(agent);
      const made = await hangar(laptop, ['session', 'new', 'mini', '--name', 'ticks', ...BASH]);
      expect(made.code, made.stderr).toBe(0);
      const attached = new AttachedCli(laptop, ['mini', 'ticks']);
      cleanups.push(() => attached[Symbol.asyncDispose]());
      await attached.waitForText('$ ', ATTACH_MS);
      attached.type('for i in $(seq 1 80); do echo tick-$i; sleep 0.1; done; echo ticks-done\r');
      await attached.waitForText(/^tick-5$/m);

      const port = relay.port;
      await relay.crash();
      const killed = Date.now();
      await attached.waitForText('reconnecting…');
      const back = await relayFor(sharedCleanups, relayData, port, [], net.outsideIp);
      expect(back.port).toBe(port);
      await attached.waitForText(/^ticks-done$/m, 40_000);
      console.log(`[relay-splice] relay killed → terminal through the relay again: ${Date.now() - killed} ms`);
      const { seen, firstInRepaint } = ticksDrawn(attached.raw);
      expect(seen).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
      // The replay reaches the terminal before its redraw is asked for: the repaint can be first
      // only with a tick printed as tmux repaints (one, at a tick per 100 ms), never with the
      // ticks the terminal missed while the relay was down (lost, they would show only there).
      const onlyRepainted = `ticks first drawn in a repaint: ${firstInRepaint.join(', ')}`;
      expect(firstInRepaint.length, onlyRepainted).toBeLessThanOrEqual(1);
      // And the screen shows what tmux holds.
      const pane = (await tmux(shell.agentData, ['capture-pane', '-p', '-t', 'hangar-ticks'])).split('\n');
      const shown = await attached.text();
      expect(shown.slice(0, 20).map((l) => l.trimEnd())).toEqual(pane.slice(0, 20).map((l) => l.trimEnd()));
      attached.type('echo after-relay-restart\r');
      await attached.waitForText(/^after-relay-restart$/m);
      // Its attach, then the one after the relay came back.
      expect(spliceRequests(agent)).toBeGreaterThanOrEqual(asked + 2);
    });
  });

  it("an enrolled host's first link never offers the enrollment's proof to another machine at its address: it links through the relay", async () => {
    const { laptop, agent } = await firewalledStack(cleanups);
    // Another agent here takes the port the host published as 127.0.0.1:<port> in its namespace.
    const decoy = await startAgentProcess(dir('decoy'), { port: agent.port, logLevel: 'info' });
    cleanups.push(() => decoy.stop());
    const listed = await hangar(laptop, ['session', 'ls', 'mini']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(spliceRequests(agent)).toBe(1);
    expect((await hostsLs(laptop)).find((h) => h.name === 'mini')).toMatchObject({ status: 'online', via: 'relayed' });
    // The decoy saw a TLS connection and nothing after it: no handshake to refuse (it logs one it refuses).
    expect(decoy.stderr()).not.toMatch(/handshake refused/);
  });

  it('a host whose addresses never answer (a firewall drops them) is reached through the relay without waiting out the link’s 15 s timeout on its address', async () => {
    // Listening everywhere in its namespace, it publishes its veth address first: the firewall
    // there drops what comes to it, so nothing ever answers (no refusal either).
    const { laptop, agent, net } = await firewalledStack(cleanups, { agentArgs: ['--listen', '0.0.0.0:0'] });
    const listed = (await hostsLs(laptop)).find((h) => h.name === 'mini')!;
    expect(listed.address).toBe(`${net.outsideIp.replace(/\.1$/, '.2')}:${agent.port}`);
    expect((await hangar(laptop, ['session', 'new', 'mini', '--name', 'one', '--', 'sleep', '600'])).code).toBe(0);
    // Pinned now at that address: the next command probes it, and races WebRTC and the relay with it.
    const began = Date.now();
    const listedSessions = await hangar(laptop, ['session', 'ls', 'mini']);
    const took = Date.now() - began;
    console.log(`[relay-splice] a pinned host whose address never answers, through the relay: ${took} ms`);
    expect(listedSessions.code, `${listedSessions.stderr} ${listedSessions.stdout}`).toBe(0);
    // Its address (dropped: 3 s at most), raced with the splice, which wins.
    expect(took).toBeLessThan(18_000);
    expect(spliceRequests(agent)).toBe(2);
  });

  it('a relay that answers the splice itself cannot complete the link: the pinned certificate differs', async () => {
    const net = await firewalledHost();
    cleanups.push(() => net.dispose());
    const double = await RelayDouble.start(net.outsideIp);
    cleanups.push(() => double[Symbol.asyncDispose]());
    const relay = await startTestRelayProcess(dir('relay'), 0, ['--public-url', double.url]);
    cleanups.push(() => relay.stop());
    double.setUpstream(relay.url);
    const { laptop, agent } = await firewalledStack(cleanups, { net, relayUrl: double.url });
    // Linked once, honestly (through the relay): the host's keys are pinned here.
    expect((await hangar(laptop, ['session', 'ls', 'mini'])).code).toBe(0);
    expect(spliceRequests(agent)).toBe(1);

    const impostor = await loadOrCreateTlsCert(dir('impostor'));
    double.answerSplices = { cert: impostor.cert, key: impostor.key };
    const tried = await hangar(laptop, ['session', 'ls', 'mini']);
    expect(double.splicesAnswered).toBe(1);
    expect(tried.code).not.toBe(0);
    expect(tried.stderr).toMatch(/presented a different TLS certificate than when it was paired/);
    expect(spliceRequests(agent)).toBe(1);
  });

  it('the limit of open relayed links per account bites with an error that says so', async () => {
    const { laptop } = await firewalledStack(cleanups, { relayArgs: ['--splice-max', '1'] });
    const made = await hangar(laptop, ['session', 'new', 'mini', '--name', 'one', ...BASH]);
    expect(made.code, made.stderr).toBe(0);
    const attached = new AttachedCli(laptop, ['mini', 'one']);
    cleanups.push(() => attached[Symbol.asyncDispose]());
    await attached.waitForText('$ ', ATTACH_MS);

    const second = await hangar(laptop, ['session', 'ls', 'mini']);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(/already has 1 relayed connections open, the most the relay allows \(1\)/);
    // The first one is untouched.
    attached.type('echo still-here\r');
    await attached.waitForText(/^still-here$/m);
  });
});
