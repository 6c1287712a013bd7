import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from '@hangar/shared';
import { endAgent, hangarAgent, startAgentProcess, tempDir, type AgentProcess } from '../support/processes.js';
import {
  handshake,
  memoryOf,
  newDeviceKey,
  openRawLink,
  resetPeak,
  type Pins,
  type RawLink,
} from '../support/raw-link.js';

/** Mux ping frames as a client sends them: masked WebSocket binary frames (a zero key is valid). */
function pingFrames(count: number, firstNonce: number): Buffer {
  const frames: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const payload = encodeFrame({ type: 'ping', nonce: firstNonce + i });
    frames.push(Buffer.from([0x82, 0x80 | payload.length, 0, 0, 0, 0]), Buffer.from(payload));
  }
  return Buffer.concat(frames);
}

/** Writes `batch` `times` times, as fast as the socket takes it; stops if the socket closes. */
async function flood(socket: RawLink['socket'], batch: Buffer, times: number): Promise<void> {
  let closed = false;
  socket.once('close', () => (closed = true));
  for (let i = 0; i < times && !closed; i++) {
    if (!socket.write(batch)) {
      await new Promise<void>((resolve) => {
        socket.once('drain', resolve);
        socket.once('close', resolve);
      });
    }
  }
  // Everything handed to the kernel: the agent has read it or will within moments.
  if (!closed && socket.writableLength > 0) await new Promise<void>((resolve) => socket.once('drain', resolve));
}

/**
 * A device that was paired, authenticates, then floods the agent with requests for answers
 * (pings) while never reading a byte. The answers would queue in the agent without end; instead
 * the agent closes the link, saying why, and its memory stays bounded.
 */
describe('a paired device that stops reading', () => {
  let dataDir: string;
  let agent: AgentProcess;
  const links: RawLink[] = [];

  beforeEach(async () => {
    dataDir = tempDir('agent');
    agent = await startAgentProcess(dataDir);
  });

  afterEach(async () => {
    for (const link of links.splice(0)) link.destroy();
    await endAgent(agent, dataDir);
  });

  const pair = async (): Promise<{ key: ReturnType<typeof newDeviceKey>; pins: Pins }> => {
    const issued = await hangarAgent(['pair', '--data', dataDir, '--json']);
    const { code } = JSON.parse(issued.stdout) as { code: string };
    const key = newDeviceKey();
    const link = await openRawLink(agent.address);
    links.push(link);
    const pins = await handshake(link, key, { code });
    link.destroy();
    return { key, pins };
  };

  it('gets its link closed with a reason it can show, and the agent does not grow', async () => {
    const { key, pins } = await pair();
    const link = await openRawLink(agent.address);
    links.push(link);
    await handshake(link, key, { pins });

    // From here on this device reads nothing: the agent's answers pile up on its side.
    link.socket.pause();
    const pid = agent.child.pid!;
    const before = memoryOf(pid);
    resetPeak(pid);
    const PINGS = 600_000;
    const BATCH = 2000;
    await flood(link.socket, pingFrames(BATCH, 1), PINGS / BATCH);

    // Now read what the agent queued, up to its last words on the control stream.
    const reason = await new Promise<{ code: string; message: string } | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 30_000);
      link.transport.onFrame((bytes) => {
        const frame = decodeFrame(bytes);
        if (frame.type === 'close' && frame.stream === 0) {
          clearTimeout(timer);
          resolve(JSON.parse(frame.reason) as { code: string; message: string });
        }
      });
      link.transport.onClose((closed) => {
        clearTimeout(timer);
        resolve(closed);
      });
      link.socket.resume();
    });
    const after = memoryOf(pid);
    console.info(
      `never-reading peer, ${PINGS} pings: agent RSS ${before.rssMb.toFixed(1)} MB before, ` +
        `peak ${after.peakMb.toFixed(1)} MB during (+${(after.peakMb - before.rssMb).toFixed(1)} MB)`,
    );
    expect(reason).toMatchObject({ code: 'E_LINK_BACKLOG', message: expect.stringMatching(/not reading/) });
    // 8,192 queued answers cost a few MB; before the bound, these pings cost ~180 MB.
    expect(after.peakMb - before.rssMb).toBeLessThan(24);

    // The agent still serves everyone else.
    const next = await openRawLink(agent.address);
    links.push(next);
    await expect(handshake(next, key, { pins })).resolves.toEqual(pins);
  });
});
