import { Terminal } from '@xterm/headless';
import * as pty from 'node-pty';
import { HANGAR_BIN } from './processes.js';
import { expect } from 'vitest';

/**
 * `hangar attach` running in a real pseudo-terminal, its output rendered by a headless xterm:
 * what a user would see in their terminal window.
 */
export class AttachedCli implements AsyncDisposable {
  readonly screen: Terminal;
  readonly process: pty.IPty;
  private output = '';
  private exit: Promise<number>;
  private writes: Promise<void> = Promise.resolve();

  constructor(
    home: string,
    args: string[],
    size: { cols: number; rows: number } = { cols: 100, rows: 30 },
    env: Record<string, string> = {},
    /** The hangar command that attaches (`task attach` for a task's session). */
    command: string[] = ['attach'],
  ) {
    this.screen = new Terminal({ cols: size.cols, rows: size.rows, allowProposedApi: true, scrollback: 1000 });
    this.process = pty.spawn(process.execPath, [HANGAR_BIN, ...command, ...args], {
      name: 'xterm-256color',
      cols: size.cols,
      rows: size.rows,
      env: { ...process.env, HANGAR_HOME: home, ...env } as Record<string, string>,
    });
    this.process.onData((data) => {
      this.output += data;
      this.writes = this.writes.then(() => new Promise<void>((resolve) => this.screen.write(data, resolve)));
    });
    this.exit = new Promise((resolve) => this.process.onExit(({ exitCode }) => resolve(exitCode)));
  }

  /**
   * Makes the screen answer queries as a terminal emulator does on its own (xterm.js writes its
   * answers to onData, like keys); device attributes are answered as tmux answers them, as when
   * `hangar attach` runs inside tmux: tmux then gives this client the RGB feature, which a test
   * can see in `#{client_termfeatures}`. Call it right after construction, before output arrives.
   */
  answerQueries(): void {
    this.screen.parser.registerCsiHandler({ prefix: '>', final: 'c' }, () => {
      this.screen.input('\x1b[>84;0;0c', false);
      return true;
    });
    this.screen.onData((data) => this.process.write(data));
  }

  get raw(): string {
    return this.output;
  }

  type(text: string): void {
    this.process.write(text);
  }

  resize(cols: number, rows: number): void {
    this.process.resize(cols, rows);
    this.screen.resize(cols, rows);
  }

  /** The visible screen as lines of text, trailing blanks trimmed. */
  async text(): Promise<string[]> {
    await this.writes;
    const buffer = this.screen.buffer.active;
    const lines: string[] = [];
    for (let y = 0; y < this.screen.rows; y++) {
      lines.push(buffer.getLine(buffer.viewportY + y)?.translateToString(true) ?? '');
    }
    return lines;
  }

  async waitForText(needle: string | RegExp, timeoutMs = 10_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = await this.text();
      const joined = lines.join('\n');
      if (typeof needle === 'string' ? joined.includes(needle) : needle.test(joined)) return lines;
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${String(needle)}; screen:\n${joined}\nraw tail: ${JSON.stringify(this.output.slice(-400))}`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /**
   * The exit status, once what the process wrote last has been read too: node-pty can report the
   * exit before the pty's last output (seen under load: `hangar attach`'s kept stderr, written at
   * its end, missing from `raw`), so this also waits for the output to go quiet (100 ms, 2 s at most).
   */
  async waitForExit(timeoutMs = 10_000): Promise<number> {
    const code = await Promise.race([
      this.exit,
      new Promise<number>((_, reject) =>
        setTimeout(() => reject(new Error(`attach did not exit within ${timeoutMs} ms`)), timeoutMs),
      ),
    ]);
    const quietBy = Date.now() + 2_000;
    let seen = -1;
    while (seen !== this.output.length && Date.now() < quietBy) {
      seen = this.output.length;
      await new Promise((r) => setTimeout(r, 100));
    }
    return code;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.process.kill();
    await Promise.race([this.exit, new Promise((r) => setTimeout(r, 2000))]);
    this.screen.dispose();
  }
}

/**
 * `hangar attach host session` on `home` as a person uses it: at the bash prompt, what is typed
 * runs there and its output comes back (quoted apart, so the echo of the keys is not the answer),
 * and Ctrl-] detaches with status 0.
 */
export async function attachAndEcho(home: string, host: string, session: string, cleanups: (() => unknown)[]) {
  const attached = new AttachedCli(home, [host, session]);
  cleanups.push(() => attached[Symbol.asyncDispose]());
  await attached.waitForText('$ ');
  attached.type('echo hel""lo\r');
  await attached.waitForText(/^hello\s*$/m);
  attached.type('\x1d');
  expect(await attached.waitForExit()).toBe(0);
}
