import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';

/**
 * One holder process: opens its connections, says `ready` once each has connected or been
 * closed, then answers each `count` on stdin with how many are still open.
 */
const HOLDER = `
const net = require('node:net');
const [port, count, ...sources] = process.argv.slice(1);
const open = new Set();
let settled = 0;
const settle = () => { if (++settled === Number(count)) console.log('ready'); };
for (let i = 0; i < Number(count); i++) {
  const socket = net.connect({ host: '127.0.0.1', port: Number(port), localAddress: sources[i % sources.length] });
  let counted = false;
  const once = () => { if (!counted) { counted = true; settle(); } };
  socket.on('error', () => {});
  socket.once('connect', () => { open.add(socket); once(); });
  socket.once('close', () => { open.delete(socket); once(); });
}
require('node:readline').createInterface({ input: process.stdin }).on('line', () => console.log(open.size));
`;

/** At most this many per holder: under a 1,024 open-files limit, whatever this machine's is. */
const PER_PROCESS = 500;

/**
 * Plain TCP connections that never send a byte, held by child processes: the flood does not
 * depend on this process's open-files limit, and the agent sees them as another program would.
 */
export class IdleFlood implements AsyncDisposable {
  private constructor(private readonly holders: { child: ChildProcess; lines: Interface }[]) {}

  /** Opens `count` connections to `address`, spread round-robin over the local `sources`. */
  static async start(address: string, count: number, sources: string[]): Promise<IdleFlood> {
    const port = address.split(':').pop()!;
    const holders: { child: ChildProcess; lines: Interface }[] = [];
    const flood = new IdleFlood(holders);
    try {
      for (let first = 0; first < count; first += PER_PROCESS) {
        const n = Math.min(PER_PROCESS, count - first);
        // Each holder starts where the last left off in `sources`, so the spread stays even.
        const rotated = sources.map((_, i) => sources[(first + i) % sources.length]!);
        const child = spawn(process.execPath, ['-e', HOLDER, '--', port, String(n), ...rotated], {
          stdio: ['pipe', 'pipe', 'inherit'],
        });
        const lines = createInterface({ input: child.stdout! });
        holders.push({ child, lines });
        await nextLine(lines, child, 30_000);
      }
      return flood;
    } catch (error) {
      await flood[Symbol.asyncDispose]();
      throw error;
    }
  }

  /** How many of the connections are still open. */
  async stillOpen(): Promise<number> {
    let open = 0;
    for (const { child, lines } of this.holders) {
      const answer = nextLine(lines, child, 10_000);
      child.stdin!.write('count\n');
      open += Number(await answer);
    }
    return open;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(
      this.holders.map(({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return undefined;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGKILL');
        return exited;
      }),
    );
  }
}

function nextLine(lines: Interface, child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connection holder said nothing in ${timeoutMs} ms`)), timeoutMs);
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`connection holder exited with ${code}`));
    };
    child.once('exit', onExit);
    lines.once('line', (line) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve(line);
    });
  });
}
