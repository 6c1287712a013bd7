import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '@hangar/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_BIN, killTmuxServer, removeDir, tempDir } from '../support/processes.js';

/**
 * `hangar up`'s heartbeat asks its agent over the stdin pipe it holds anyway (--stop-with-stdin),
 * instead of a TLS handshake with the link port every 5 s: the agent answers from its event loop.
 */
describe('a supervised agent (hangar-agent serve --stop-with-stdin)', () => {
  let dir: string | undefined;

  afterEach(async () => {
    if (dir) {
      await killTmuxServer(dir);
      removeDir(dir);
    }
  });

  it('answers each heartbeat ping on its stdin with a pong line on stdout, then stops when stdin ends', async () => {
    dir = tempDir('agent-heartbeat');
    const child = spawn(
      process.execPath,
      [...AGENT_NODE_FLAGS, AGENT_BIN, 'serve', '--listen', '127.0.0.1:0', '--data', dir, '--stop-with-stdin'],
      { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...AGENT_ENV, HANGAR_LOG_LEVEL: 'warn' } },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const lines: Record<string, unknown>[] = [];
    let seen: (() => void) | undefined;
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(JSON.parse(line) as Record<string, unknown>);
      seen?.();
    });
    const until = (what: (line: Record<string, unknown>) => boolean) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no such line within 10 s; lines: ${JSON.stringify(lines)}`)),
          10_000,
        );
        const look = () => {
          if (!lines.some(what)) return;
          clearTimeout(timer);
          seen = undefined;
          resolve();
        };
        seen = look;
        look();
      });
    try {
      await until((line) => line['event'] === 'listening');
      child.stdin.write('ping 1\nping 2\nnot a ping\nping 3\n');
      await until((line) => line['event'] === 'pong' && line['n'] === 3);
      expect(lines.filter((line) => line['event'] === 'pong')).toEqual([
        { event: 'pong', n: 1 },
        { event: 'pong', n: 2 },
        { event: 'pong', n: 3 },
      ]);
      child.stdin.end();
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);

  it('stops as on Ctrl-C, not with an error, when its supervisor is gone while a pong is on its way', async () => {
    dir = tempDir('agent-heartbeat');
    const child = spawn(
      process.execPath,
      [...AGENT_NODE_FLAGS, AGENT_BIN, 'serve', '--listen', '127.0.0.1:0', '--data', dir, '--stop-with-stdin'],
      { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...AGENT_ENV, HANGAR_LOG_LEVEL: 'info' } },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      const lines = createInterface({ input: child.stdout });
      await new Promise<void>((resolve) => lines.on('line', (line) => line.includes('listening') && resolve()));
      // A supervisor killed (kill -9) just after its last ping: the read end of the agent's stdout
      // is closed when it answers, so the pong fails with EPIPE.
      lines.close();
      child.stdout.destroy();
      child.stdin.write('ping 1\n');
      child.stdin.end();
      expect(await exited, stderr).toBe(0);
      expect(stderr).toContain('stopping; tmux sessions keep running');
      expect(stderr).not.toContain('EPIPE');
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);
});
