import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { endAgent, hangar, pairWith, startAgentProcess, tempDir, type AgentProcess } from '../support/processes.js';
import { IdleFlood } from '../support/idle-flood.js';
import {
  memoryOf,
  openIdleConnections,
  resetPeak,
  sendUnfinishedFrame,
  tlsConnectFrom,
  until,
} from '../support/raw-link.js';

/** 127.0.0.1 … 127.0.0.n: on Linux all of 127/8 is local, so each is a distinct source to the agent. */
const loopbackSources = (n: number, first = 1) => Array.from({ length: n }, (_, i) => `127.0.0.${first + i}`);

/** The soft and hard "Max open files" of a process. */
function openFilesLimit(pid: number): { soft: number; hard: number } {
  const line = /^Max open files\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return { soft: Number(line![1]), hard: Number(line![2]) };
}

/**
 * Peers that never paired, before hosts are reachable from the internet: they may connect, but
 * not take the agent's file descriptors or memory, and the owner still gets in.
 */
describe('peers that never paired', () => {
  let home: string;
  let dataDir: string;
  let agent: AgentProcess | undefined;
  const sockets: Socket[] = [];
  let flood: IdleFlood | undefined;

  beforeEach(() => {
    home = tempDir('home');
    dataDir = tempDir('agent');
  });

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await flood?.[Symbol.asyncDispose]();
    flood = undefined;
    await endAgent(agent, home, dataDir);
    agent = undefined;
  });

  it('cannot keep the owner out with 1,100 idle connections against a 1,024 open-files limit', async () => {
    agent = await startAgentProcess(dataDir, { wrapper: ['prlimit', '--nofile=1024:1024', '--'] });
    expect(openFilesLimit(agent.child.pid!)).toEqual({ soft: 1024, hard: 1024 });
    await pairWith(home, 'box', agent);

    // From 50 sources, the owner's own address among them: both the per-source and the total cap bite.
    flood = await IdleFlood.start(agent.address, 1100, loopbackSources(50));
    const started = Date.now();
    const listed = await hangar(home, ['session', 'ls', 'box'], 30_000);
    const tookMs = Date.now() - started;
    console.info(
      `owner's \`hangar session ls\` with 1,100 idle connections made: ${tookMs} ms ` +
        `(${await flood.stillOpen()} of them still open)`,
    );
    expect(listed.stderr).toBe('');
    expect(listed.code).toBe(0);
    expect(tookMs).toBeLessThan(10_000);
    expect(agent.child.exitCode).toBeNull();
  });

  it('cannot grow the agent with 150 unfinished 1 MiB frames before authenticating', async () => {
    agent = await startAgentProcess(dataDir);
    const pid = agent.child.pid!;
    const before = memoryOf(pid);
    resetPeak(pid);
    // 15 per source from 10 sources: under the connection caps, so only the payload limit is at work.
    const sources = loopbackSources(10, 2);
    const peers = await Promise.all(
      Array.from({ length: 150 }, (_, i) => sendUnfinishedFrame(agent!.address, 1024 * 1024, sources[i % 10])),
    );
    sockets.push(...peers);
    // The agent either drops each peer or holds its frame; either way, wait until it has decided.
    await until(() => peers.every((peer) => peer.destroyed || peer.writableLength === 0), 30_000, 'frames sent');
    await until(() => peers.every((peer) => peer.destroyed), 30_000, 'agent dropped every peer');
    const after = memoryOf(pid);
    console.info(
      `150 unfinished 1 MiB frames: agent RSS ${before.rssMb.toFixed(1)} MB before, ` +
        `peak ${after.peakMb.toFixed(1)} MB (+${(after.peakMb - before.rssMb).toFixed(1)} MB), ` +
        `${after.rssMb.toFixed(1)} MB after`,
    );
    expect(after.peakMb - before.rssMb).toBeLessThan(64);
    expect(after.rssMb - before.rssMb).toBeLessThan(64);
    expect(agent.child.exitCode).toBeNull();
  });

  it('are dropped within seconds when they stall the TLS handshake or the HTTP request', async () => {
    agent = await startAgentProcess(dataDir);
    const [idle] = await openIdleConnections(agent.address, 1, ['127.0.0.2']);
    const slowHeaders = tlsConnectFrom({
      host: '127.0.0.1',
      port: agent.port,
      localAddress: '127.0.0.3',
      rejectUnauthorized: false,
    });
    slowHeaders.on('error', () => undefined);
    sockets.push(idle!, slowHeaders);
    await new Promise<void>((resolve) => slowHeaders.once('secureConnect', resolve));
    slowHeaders.write('GET /link HTTP/1.1\r\nHost: 127.0.0.1\r\n'); // …and the rest never comes
    const started = Date.now();
    await until(() => idle!.destroyed && slowHeaders.destroyed, 20_000, 'both stalled peers dropped');
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("start with the open-files soft limit raised to the hard limit (Node does it before the agent's code runs)", async () => {
    agent = await startAgentProcess(dataDir, { wrapper: ['prlimit', '--nofile=1024:4096', '--'] });
    expect(openFilesLimit(agent.child.pid!)).toEqual({ soft: 4096, hard: 4096 });
  });
});
