import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync, constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodePty from 'node-pty';
import { afterEach, describe, expect, it } from 'vitest';
import { PtyInput } from '../../src/sessions/pty-input.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** `cat` in a pty, and the text it has printed so far. */
function catInPty() {
  // No echo: what comes back is cat's copy alone, in order.
  const pty = nodePty.spawn('sh', ['-c', 'stty -echo && echo cat-ready && exec cat'], {
    name: 'xterm-256color',
    cols: 80,
    rows: 24,
    encoding: null,
  });
  let text = '';
  const waiters: Array<{ needle: string; resolve: () => void }> = [];
  pty.onData((chunk) => {
    text += Buffer.from(chunk as unknown as Uint8Array).toString('latin1');
    for (const w of waiters.splice(0)) {
      if (text.includes(w.needle)) w.resolve();
      else waiters.push(w);
    }
  });
  const exited = new Promise<void>((resolve) => pty.onExit(() => resolve()));
  cleanups.push(() => pty.kill('SIGKILL'));
  const ready = new Promise<void>((resolve) => waiters.push({ needle: 'cat-ready\r\n', resolve }));
  return {
    pty,
    exited,
    ready,
    /** What cat printed after it started. */
    text: () => text.slice(text.indexOf('cat-ready\r\n') + 'cat-ready\r\n'.length),
    printed: (needle: string) =>
      new Promise<void>((resolve) => (text.includes(needle) ? resolve() : waiters.push({ needle, resolve }))),
  };
}

/**
 * Occupies every thread of libuv's pool: each opens a FIFO that nobody writes, which blocks until
 * the cleanup opens the other end. Anything that needs the pool waits until then.
 */
function blockThreadPool(): void {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-pool-'));
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const fifos = Array.from({ length: threads }, (_, i) => join(dir, `fifo-${i}`));
  for (const fifo of fifos) execFileSync('mkfifo', [fifo]);
  const opened = fifos.map((fifo) => open(fifo, 'r').then((handle) => handle.close()));
  cleanups.push(() => {
    // A writer that needs no reader (O_RDWR on a FIFO, Linux): a pool thread that has not yet
    // begun its open (a busy machine) finds the writer there when it does. O_WRONLY|O_NONBLOCK
    // failed with ENXIO then, and the throw left the test's cat running (clean-clone CI run 9).
    const writers = fifos.map((fifo) => openSync(fifo, constants.O_RDWR));
    void Promise.all(opened).then(() => {
      for (const fd of writers) closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    });
  });
}

describe('PtyInput', () => {
  it('writes keystrokes to the pty from the loop, even while the thread pool is busy', async () => {
    const cat = catInPty();
    await cat.ready;
    const input = new PtyInput(cat.pty, (error) => {
      throw error;
    });
    blockThreadPool();
    // node-pty's own write() would wait for a free pool thread here, and the echo with it.
    input.write(Buffer.from('typed-while-busy\r'));
    await cat.printed('typed-while-busy');
  });

  it('keeps the order of a paste larger than the tty takes at once', async () => {
    const cat = catInPty();
    await cat.ready;
    const input = new PtyInput(cat.pty, (error) => {
      throw error;
    });
    // Lines, so the tty's line discipline hands them on as they complete (a raw 64 KiB line would not fit).
    const lines = Array.from({ length: 4000 }, (_, i) => `line-${String(i).padStart(5, '0')}`);
    for (const line of lines) input.write(Buffer.from(`${line}\n`));
    await cat.printed(`${lines.at(-1)}\r\n`);
    expect(cat.text().replaceAll('\r\n', '\n')).toBe(lines.map((line) => `${line}\n`).join(''));
    input.dispose();
  });

  it('drops input once the pty has gone instead of writing to a closed descriptor', async () => {
    const cat = catInPty();
    await cat.ready;
    const input = new PtyInput(cat.pty, (error) => {
      throw error;
    });
    cat.pty.kill('SIGKILL');
    await cat.exited;
    expect(() => input.write(Buffer.from('late'))).not.toThrow();
  });
});
