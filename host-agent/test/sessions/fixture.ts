import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach } from 'vitest';
import {
  SessionManager,
  tmuxSocketName,
  type Attachment,
  type SessionManagerOptions,
} from '../../src/sessions/index.js';
import { killTmuxServer, removeDir } from '../../../test/support/processes.js';

const run = promisify(execFile);

/** A temp data dir, hence its own tmux server; disposing kills that server and removes the dir. */
export interface TestHost extends AsyncDisposable {
  dataDir: string;
  socket: string;
  managers: SessionManager[];
  start(options?: Partial<SessionManagerOptions>): Promise<SessionManager>;
  tmux(...args: string[]): Promise<string>;
}

export async function startTestHost(): Promise<TestHost> {
  const dataDir = await mkdtemp(join(tmpdir(), 'hangar-sessions-'));
  const socket = tmuxSocketName(dataDir);
  const managers: SessionManager[] = [];
  return {
    dataDir,
    socket,
    managers,
    async start(options = {}) {
      const manager = await SessionManager.start({ dataDir, ...options });
      managers.push(manager);
      return manager;
    },
    async tmux(...args) {
      const { stdout } = await run('tmux', ['-L', socket, ...args], { timeout: 10_000 });
      return stdout;
    },
    async [Symbol.asyncDispose]() {
      for (const manager of managers.reverse()) await manager.dispose();
      // Waits for the panes' processes too: their last writes would race the removal (ENOTEMPTY).
      await killTmuxServer(dataDir);
      removeDir(dataDir);
    },
  };
}

/** A fresh TestHost for each test of the file, handed to `started`, disposed after the test. */
export function useTestHost(started: (host: TestHost) => void): void {
  let host: TestHost | undefined;
  beforeEach(async () => {
    host = await startTestHost();
    started(host);
  });
  afterEach(async () => {
    await host?.[Symbol.asyncDispose]();
    host = undefined;
  });
}

export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Everything an attachment printed, decoded, acking as it goes (a client that keeps up): what it
 * holds already (tmux may have drawn the first screen before attach() returned), then what comes.
 */
export function screenText(attachment: Attachment, { ack = true } = {}): { text: () => string } {
  const decoder = new TextDecoder();
  const held = attachment.readFrom(0) ?? new Uint8Array(0);
  let text = decoder.decode(held, { stream: true });
  if (ack && held.length > 0) attachment.ack(held.length);
  attachment.onOutput((chunk, offset) => {
    text += decoder.decode(chunk, { stream: true });
    if (ack) attachment.ack(offset + chunk.length);
  });
  return { text: () => text };
}

export function typeInto(attachment: Attachment, keys: string): void {
  attachment.input(new TextEncoder().encode(keys));
}

export const bash = ['bash', '--norc', '--noprofile'];
