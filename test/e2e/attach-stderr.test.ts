import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { BASH, hangar } from '../support/processes.js';

/** The bottom-row notice `hangar attach` writes (a 30-row terminal), up to its end. */
const NOTICE = '\x1b7\x1b[30;1H\x1b[7m\x1b[2K';
const LEAVE_SCREEN = '\x1b[?1049l';

/**
 * While `hangar attach` holds the terminal, what the rest of the process writes to stderr (Node's
 * warnings, a library's console.error) goes on the bottom row as a notice, not across tmux's
 * screen; none of it is lost: once the terminal is the user's again it is written whole.
 */
describe('hangar attach: stderr while attached', () => {
  const box = usePairedHost();
  /** A preload for the attach command's process (`name` in the test's home), made of `source`. */
  const writePreload = (name: string, source: string): string => {
    const preload = join(box.home, name);
    writeFileSync(preload, source);
    return preload;
  };
  /** `hangar attach box <session>` whose process loads `preload` first: what a test makes it write to stderr. */
  const attachPreloaded = (session: string, preload: string, env: Record<string, string> = {}) =>
    box.attach(session, undefined, {
      NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --require ${preload}`.trim(),
      ...env,
    });

  it("a Node warning shows its first line as a notice and comes whole after the detach, a line's unfinished tail too", async () => {
    // A preload in the command's process: on SIGUSR2 a warning longer than the row (Node writes it
    // as one write of two lines), a UTF-8 line in two writes split inside a character, and text
    // with no newline yet.
    const preload = writePreload(
      'stderr-on-signal.cjs',
      `process.on('SIGUSR2', () => {
        process.emitWarning('docs31-warning ' + 'w'.repeat(150) + ' end-of-warning');
        // Node writes a warning on the next tick.
        setTimeout(() => {
          const split = Buffer.from('naïve-split\\n');
          process.stderr.write(split.subarray(0, 3));
          process.stderr.write(split.subarray(3), () => {
            process.stderr.write('written-after-callback\\n');
            process.stderr.write('unfinished-tail');
          });
        }, 50);
      });\n`,
    );
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'work', ...BASH])).code).toBe(0);
    const client = attachPreloaded('work', preload);
    await client.waitForText('$');
    process.kill(client.process.pid, 'SIGUSR2');
    const deadline = Date.now() + 10_000;
    while (!client.raw.includes('written-after-callback') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 25));
    client.type('echo still-$((6*7))\r');
    await client.waitForText(/^still-42$/m);

    const attached = client.raw.slice(0, client.raw.lastIndexOf(LEAVE_SCREEN));
    // The warning's own line is the notice (not Node's "(Use `node --trace-warnings ...`" line
    // painted over it), cut to the row.
    expect(attached).toMatch(/\x1b\[2K\(node:\d+\) Warning: docs31-warning w+…/);
    expect(attached).not.toContain('--trace-warnings');
    expect(attached).toContain(`${NOTICE}naïve-split\x1b[0m`);
    expect(attached).not.toContain('unfinished-tail');

    client.type('\x1d');
    expect(await client.waitForExit()).toBe(0);
    const after = client.raw.slice(client.raw.lastIndexOf(LEAVE_SCREEN));
    expect(after).toMatch(/\(node:\d+\) Warning: docs31-warning w{150} end-of-warning\r?\n/);
    expect(after).toContain('--trace-warnings');
    expect(after).toMatch(/naïve-split\r?\n/);
    expect(after).toMatch(/written-after-callback\r?\n/);
    // The unfinished tail on a line of its own: the detach message does not run on after it.
    expect(after).toMatch(/unfinished-tail\r?\n\[detached from box\/work/);
  });

  it('SIGTERM detaches as the detach key does: the screen and stderr are given back, the session keeps running, status 143', async () => {
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'work', ...BASH])).code).toBe(0);
    const preload = writePreload(
      'stderr-line.cjs',
      `process.on('SIGUSR2', () => process.stderr.write('said-while-attached\\n'));\n`,
    );
    const client = attachPreloaded('work', preload);
    await client.waitForText('$');
    process.kill(client.process.pid, 'SIGUSR2');
    const deadline = Date.now() + 10_000;
    while (!client.raw.includes('said-while-attached') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 25));
    client.type('echo before-term\r');
    await client.waitForText(/^before-term$/m);

    process.kill(client.process.pid, 'SIGTERM');
    expect(await client.waitForExit()).toBe(143);
    const after = client.raw.slice(client.raw.lastIndexOf(LEAVE_SCREEN));
    expect(after).toMatch(/said-while-attached\r?\n/);
    expect(after).toContain('[detached from box/work');
    const listed = await hangar(box.home, ['session', 'ls', 'box']);
    expect(listed.stdout).toMatch(/work/);
    const again = box.attach('work');
    await again.waitForText('before-term');
    again.type('\x1d');
    expect(await again.waitForExit()).toBe(0);
  });

  it("a crash while attached gives the terminal back first: Node's error and stderr's lines land on the user's screen", async () => {
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'work', ...BASH])).code).toBe(0);
    const preload = writePreload(
      'crash.cjs',
      `process.on('SIGUSR2', () => setTimeout(() => {
        process.stderr.write('kept-before-crash\\n');
        throw new Error('docs31-crash');
      }));\n`,
    );
    const client = attachPreloaded('work', preload);
    await client.waitForText('$');
    process.kill(client.process.pid, 'SIGUSR2');
    expect(await client.waitForExit()).not.toBe(0);
    const at = client.raw.lastIndexOf(LEAVE_SCREEN);
    expect(at).toBeGreaterThanOrEqual(0);
    const after = client.raw.slice(at);
    expect(after).toMatch(/kept-before-crash\r?\n/);
    expect(after).toContain('Error: docs31-crash');
    expect(client.raw.slice(0, at)).not.toContain('docs31-crash');
  });

  // CJK and emoji; and small form variants (U+FE50…), wide too (East Asian Width W), which a table
  // of wide ranges kept by hand in attach.ts once missed: counted as one column each, the notice ran
  // past the row and scrolled the screen.
  // retry 1: in 1 of 3 clean-clone CI runs (and once for a helper under load) the bottom row read
  // empty just after the notice's bytes came; cause not found (the closing note of 2026-12-08 says
  // what was tried). The retry stays until it is.
  it.each([
    { what: 'CJK and emoji', name: 'cjk', char: '漢', tail: "'😀'.repeat(10)" },
    { what: 'small form variants', name: 'small', char: '﹐', tail: "''" },
  ])(
    'a notice of wide characters ($what) is cut to the columns it takes: the screen does not scroll under tmux',
    { retry: 1 },
    async ({ name, char, tail }) => {
      expect((await hangar(box.home, ['session', 'new', 'box', '--name', name, ...BASH])).code).toBe(0);
      // 60 wide characters (and what follows): 125 columns and more, in a 100-column terminal.
      const preload = writePreload(
        `wide-${name}.cjs`,
        `process.on('SIGUSR2', () => process.stderr.write('wide:' + '${char}'.repeat(60) + ${tail} + '\\n'));\n`,
      );
      const client = attachPreloaded(name, preload);
      await client.waitForText('$');
      const before = await client.text();
      expect(before[0]).toMatch(/^\$/);
      process.kill(client.process.pid, 'SIGUSR2');
      const deadline = Date.now() + 10_000;
      while (!client.raw.includes('wide:') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      const after = await client.text();
      // The notice on the bottom row, whole in it; what tmux drew stays where it was.
      expect(after[29]).toMatch(new RegExp(`^wide:${char}+…$`));
      expect(after[0]).toBe(before[0]);
      client.type('echo wide-$((6*7))\r');
      const lines = await client.waitForText(/^wide-42$/m);
      expect(lines.slice(0, 3)).toEqual([`${before[0]}echo wide-$((6*7))`, 'wide-42', before[0]]);
      client.type('\x1d');
      expect(await client.waitForExit()).toBe(0);
    },
  );

  // A line of many graphemes that take no column (U+200B): Intl.Segmenter's iteration costs time in
  // the length of the whole string at each step, so measuring all of it held the command for tens of
  // seconds, keys and output with it. Only the head that could fit the row is measured.
  it('a long stderr line of zero-width characters is a notice cut to the row, and the terminal stays live', async () => {
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'work', ...BASH])).code).toBe(0);
    const preload = writePreload(
      'zero-width.cjs',
      `process.on('SIGUSR2', () => process.stderr.write('zero:' + '\\u200b'.repeat(200000) + 'end-of-zero\\n'));\n`,
    );
    const client = attachPreloaded('work', preload);
    await client.waitForText('$');
    process.kill(client.process.pid, 'SIGUSR2');
    // The notice comes while the keys still do (before: tens of seconds later).
    const shown = Date.now() + 10_000;
    while (!client.raw.includes(`${NOTICE}zero:`) && Date.now() < shown) await new Promise((r) => setTimeout(r, 25));
    expect(client.raw).toContain(`${NOTICE}zero:`);
    client.type('echo live-$((6*7))\r');
    await client.waitForText(/^live-42$/m);
    const attached = client.raw.slice(0, client.raw.lastIndexOf(LEAVE_SCREEN));
    expect(attached).toMatch(/\x1b\[2Kzero:\u200b+…\x1b\[0m/);
    expect(attached).not.toContain('end-of-zero');
    client.type('\x1d');
    expect(await client.waitForExit()).toBe(0);
  });

  it('a writer that never ends its stderr line keeps the terminal live, its text cut and counted', async () => {
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'work', ...BASH])).code).toBe(0);
    // 8 MiB in 1 KiB writes and no newline (before: each write joined and split the whole unfinished
    // line again, ~32 GB of scanning, the keys held for minutes).
    const preload = writePreload(
      'runaway.cjs',
      `process.on('SIGUSR2', () => {
        const piece = 'r'.repeat(1024);
        process.stderr.write('runaway:');
        for (let i = 0; i < 8192; i++) process.stderr.write(piece);
        process.stderr.write('end-of-runaway\\n');
      });\n`,
    );
    const client = attachPreloaded('work', preload);
    await client.waitForText('$');
    process.kill(client.process.pid, 'SIGUSR2');
    const shown = Date.now() + 10_000;
    while (!client.raw.includes(`${NOTICE}runaway:`) && Date.now() < shown) await new Promise((r) => setTimeout(r, 25));
    expect(client.raw).toContain(`${NOTICE}runaway:`);
    client.type('echo live-$((6*7))\r');
    await client.waitForText(/^live-42$/m);
    client.type('\x1d');
    expect(await client.waitForExit()).toBe(0);
    // After the terminal is given back: what was kept (up to 64 KiB of it), ended, then that the line was
    // not kept whole (one line: its 16 KiB pieces are not lines of their own).
    const after = client.raw.slice(client.raw.lastIndexOf(LEAVE_SCREEN));
    expect(after).toMatch(
      /runaway:r{40000,}\r?\nhangar: 1 more line written to stderr while attached was not kept\r?\n/,
    );
  });

  it('a stderr line longer than what is cut at once comes whole after the detach: no newline inside it or after it', async () => {
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'work', ...BASH])).code).toBe(0);
    // 20,000 characters in writes of 1,000, then the newline: past the 16 KiB at which an unfinished
    // line is taken as it is (the runaway case above). Then a line exactly that long.
    const preload = writePreload(
      'long-line.cjs',
      `process.on('SIGUSR2', () => {
        process.stderr.write('long:');
        for (let i = 0; i < 20; i++) process.stderr.write('l'.repeat(1000));
        process.stderr.write('end-of-long\\n');
        process.stderr.write('x'.repeat(16 * 1024));
        process.stderr.write('\\nnext-line\\n');
      });\n`,
    );
    const client = attachPreloaded('work', preload);
    await client.waitForText('$');
    process.kill(client.process.pid, 'SIGUSR2');
    const shown = Date.now() + 10_000;
    while (!client.raw.includes(`${NOTICE}long:`) && Date.now() < shown) await new Promise((r) => setTimeout(r, 25));
    expect(client.raw).toContain(`${NOTICE}long:`);
    client.type('echo live-$((6*7))\r');
    await client.waitForText(/^live-42$/m);
    client.type('\x1d');
    expect(await client.waitForExit()).toBe(0);
    const after = client.raw.slice(client.raw.lastIndexOf(LEAVE_SCREEN));
    expect(after).toMatch(/long:l{20000}end-of-long\r?\nx{16384}\r?\nnext-line\r?\n\[detached from box\/work/);
  });

  it("a HANGAR_DEBUG notice shows the control characters in what it says, as stderr's notices do: none reaches the terminal", async () => {
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'work', ...BASH])).code).toBe(0);
    // A lane.node that does not load, with an error whose first line holds a terminal's escape (a
    // path of the install can hold anything): the command's HANGAR_DEBUG notice says why, in it.
    const preload = writePreload(
      'odd-addon.cjs',
      `const Module = require('node:module');
      const load = Module._load;
      Module._load = function (request, ...rest) {
        if (String(request).endsWith('lane.node')) throw new Error('odd\\x1b]0;set-by-a-notice\\x07 path');
        return load.call(this, request, ...rest);
      };\n`,
    );
    const client = attachPreloaded('work', preload, { HANGAR_DEBUG: '1' });
    await client.waitForText('$');
    client.type('echo first\r');
    await client.waitForText(/^first$/m);
    // Past the pause after which a lane is tried.
    await new Promise((r) => setTimeout(r, 400));
    client.type('echo second\r');
    await client.waitForText(/^second$/m);
    const deadline = Date.now() + 10_000;
    while (!client.raw.includes('set-by-a-notice') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 25));
    expect(client.raw).toContain(
      `${NOTICE}hangar: no lane (lane.node did not load (odd\\x1b]0;set-by-a-notice\\x07 path)`,
    );
    expect(client.raw).not.toContain('\x1b]0;set-by-a-notice');
    client.type('\x1d');
    expect(await client.waitForExit()).toBe(0);
  });

  it('process.exit while attached gives the terminal back: the half-written line comes out', async () => {
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'work', ...BASH])).code).toBe(0);
    const preload = writePreload(
      'exit.cjs',
      `process.on('SIGUSR2', () => setTimeout(() => {
        process.stderr.write('half-written-at-exit');
        process.exit(7);
      }));\n`,
    );
    const client = attachPreloaded('work', preload);
    await client.waitForText('$');
    process.kill(client.process.pid, 'SIGUSR2');
    expect(await client.waitForExit()).toBe(7);
    const at = client.raw.lastIndexOf(LEAVE_SCREEN);
    expect(at).toBeGreaterThanOrEqual(0);
    expect(client.raw.slice(at)).toMatch(/half-written-at-exit\r?\n/);
  });

  it("the command's own core's log lines (HANGAR_LOG_LEVEL=debug) are notices too, not lines across tmux's screen", async () => {
    expect((await hangar(box.home, ['session', 'new', 'box', '--name', 'work', ...BASH])).code).toBe(0);
    const client = box.attach('work', undefined, { HANGAR_LOG_LEVEL: 'debug' });
    await client.waitForText('$');
    client.type('echo logged-$((6*7))\r');
    await client.waitForText(/^logged-42$/m);
    // The link drops and comes back: the core logs it.
    await box.restartAgent();
    client.type('echo again-$((6*7))\r');
    await client.waitForText(/^again-42$/m, 20_000);
    client.type('\x1d');
    expect(await client.waitForExit()).toBe(0);
    const attached = client.raw.slice(client.raw.indexOf('\x1b[?1049h'), client.raw.lastIndexOf(LEAVE_SCREEN));
    // Every JSON log line while attached sits in a notice on the bottom row.
    const across = attached.split('{"level"').slice(1);
    expect(across.length).toBeGreaterThan(0);
    expect(attached.split(`${NOTICE}{"level"`).length - 1).toBe(across.length);
  });
});
