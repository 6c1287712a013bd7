import { createServer, connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { loadNativeLanes, type NativeLanes } from '@hangar/lane';
import { useCleanups } from '../../test/support/cleanups.js';

/**
 * peek: what a socket Node is not reading has received, left on it. The link port uses it to tell
 * a lane from TLS without reading the socket it hands to the TLS server.
 */
const cleanups = useCleanups();

function native(): NativeLanes {
  const lanes = loadNativeLanes();
  if ('unavailable' in lanes) throw new Error(`the native relay did not load: ${lanes.unavailable}`);
  return lanes;
}

/** A connected pair: `accepted` is paused from accept on (nothing reads it), `client` dials it. */
async function pausedPair(): Promise<{ accepted: Socket; client: Socket; fd: number }> {
  const server = createServer({ pauseOnConnect: true });
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  cleanups.push(() => client.destroy());
  const socket = await accepted;
  cleanups.push(() => socket.destroy());
  const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
  return { accepted: socket, client, fd };
}

async function until<T>(look: () => T | undefined): Promise<T> {
  for (;;) {
    const value = look();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('peek', () => {
  it('shows what came, up to max, and leaves it on the socket for whoever reads it next', async () => {
    const lanes = native();
    const { accepted, client, fd } = await pausedPair();
    expect(lanes.peek(fd, 8)).toEqual(Buffer.alloc(0));
    client.write('HGLANE/1 and more');
    const seen = await until(() => {
      const bytes = lanes.peek(fd, 8);
      return bytes !== null && bytes.length === 8 ? bytes : undefined;
    });
    expect(seen.toString()).toBe('HGLANE/1');
    expect(lanes.peek(fd, 3)!.toString()).toBe('HGL');
    // Still there: the socket's own reader gets every byte.
    accepted.resume();
    const read = await new Promise<string>((resolve) => accepted.once('data', (chunk) => resolve(chunk.toString())));
    expect(read).toBe('HGLANE/1 and more');
  });

  it('says null once the peer has closed with nothing sent, and refuses bad arguments by name', async () => {
    const lanes = native();
    const { client, fd } = await pausedPair();
    client.end();
    expect(await until(() => (lanes.peek(fd, 8) === null ? true : undefined))).toBe(true);
    expect(() => lanes.peek(-1, 8)).toThrow(/fd must be an integer/);
    expect(() => lanes.peek(fd, 65)).toThrow(/max must be 1-64/);
  });
});
