/** Loopback TCP pairs and helpers for the native relay's tests. */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';

/** Two connected ends of one loopback TCP connection. */
export async function tcpPair(): Promise<[Socket, Socket]> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = connect(address.port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
  const other = await accepted;
  server.close();
  return [client, other];
}

/** Everything a socket says until its end, and how it ended. */
export function collect(socket: Socket): Promise<{ data: Buffer; error: Error | undefined }> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve) => {
    let error: Error | undefined;
    socket.on('error', (e) => (error = e));
    socket.on('close', () => resolve({ data: Buffer.concat(chunks), error }));
  });
}

/** Writes `total` random bytes in chunks (with backpressure), ends the socket, returns their sha256. */
export async function sendRandom(socket: Socket, total: number): Promise<string> {
  const hash = createHash('sha256');
  let left = total;
  while (left > 0) {
    const chunk = randomBytes(Math.min(left, 1 + Math.floor(Math.random() * 200_000)));
    hash.update(chunk);
    left -= chunk.length;
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  socket.end();
  return hash.digest('hex');
}

/** The sha256 and length of everything a socket says until its end. */
export function hashUntilEnd(socket: Socket): Promise<{ hash: string; length: number }> {
  const hash = createHash('sha256');
  let length = 0;
  socket.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    length += chunk.length;
  });
  return new Promise((resolve, reject) => {
    socket.once('end', () => resolve({ hash: hash.digest('hex'), length }));
    socket.once('error', reject);
  });
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}
