import { writeFileSync } from 'node:fs';

/**
 * `tick-N` lines in the order the terminal received them as new lines: a gap or a repeat is a lost
 * or doubled byte. tmux writes a line as `tick-N` and CR LF, or, when it draws several at once
 * after a scroll (CSI S), with an erase to the end of the line (ESC [ K) before the CR LF.
 * tmux may also repaint the whole screen in place, from the cursor home (ESC [ H), around a
 * reconnect or right after attaching (both seen in CI): the screen's last lines drawn again, which
 * are not output received twice. So the run of ticks at the start of a repaint that ends at the last
 * tick seen (N-k+1 … N) is left out; any other repeat still counts.
 */
export function ticks(raw: string): number[] {
  return ticksDrawn(raw).seen;
}

/**
 * `ticks`, and which of them came first in a repaint (a line ending in ESC [ K between its ESC [ H
 * and the cursor shown again, ESC [ ? 25 h): a tick printed while tmux repaints is drawn only there, but so would be
 * ticks whose bytes were lost just before a repaint, so a test that knows how many can come that
 * way (few) can say so.
 */
export function ticksDrawn(raw: string): { seen: number[]; firstInRepaint: number[] } {
  const seen: number[] = [];
  const firstInRepaint: number[] = [];
  raw.split('\x1b[H').forEach((part, index) => {
    const shown = part.indexOf('\x1b[?25h');
    const repaintEnd = index === 0 ? 0 : shown >= 0 ? shown : part.length;
    const drawn = [...part.matchAll(/tick-(\d+)(\x1b\[K)?\r*\n/g)].map((m) => ({
      n: Number(m[1]),
      inRepaint: m[2] !== undefined && m.index < repaintEnd,
    }));
    const last = seen.at(-1) ?? 0;
    let repainted = 0;
    while (repainted < drawn.length && drawn[repainted]!.n <= last) repainted++;
    const isRepaint = drawn.slice(0, repainted).every(({ n }, i) => n === last - repainted + 1 + i);
    for (const { n, inRepaint } of drawn.slice(isRepaint ? repainted : 0)) {
      seen.push(n);
      if (inRepaint) firstInRepaint.push(n);
    }
  });
  return { seen, firstInRepaint };
}

/** Polls `check` every 25 ms; fails saying `what` (and `context()`, the output so far) after `timeoutMs`. */
export async function until(
  check: () => boolean,
  what: string,
  timeoutMs = 20_000,
  context: () => string = () => '',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) {
      const seen = context();
      throw new Error(`${what}: not within ${timeoutMs} ms${seen ? `; last output: ${seen.slice(-300)}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * A shell in a terminal that prints `tick-1`, `tick-2`, … every 20 ms until `stopFile` exists:
 * output that runs through whatever the test does to the link (a move to another path, a
 * reconnect), and a check at the end that every tick came once, in order.
 */
export class TickingTerminal {
  constructor(
    private readonly terminal: { write(text: string): void; raw(): string },
    private readonly stopFile: string,
  ) {}

  /** Starts the ticks and waits for the first `first` of them. */
  async start(first = 20): Promise<void> {
    this.terminal.write(
      `i=0; while [ ! -e ${this.stopFile} ]; do i=$((i+1)); echo tick-$i; sleep 0.02; done; echo ticks-""done\r`,
    );
    await this.more(first, 'ticks');
  }

  /** Stops the ticker without checking (a cleanup after a failure). */
  stopNow(): void {
    writeFileSync(this.stopFile, '');
  }

  count(): number {
    return ticks(this.terminal.raw()).length;
  }

  /** Waits for `n` more ticks than were seen when called. */
  async more(n: number, what: string, timeoutMs = 20_000): Promise<void> {
    const from = this.count();
    await until(
      () => this.count() >= from + n,
      what,
      timeoutMs,
      () => this.terminal.raw(),
    );
  }

  /**
   * Stops the ticker and checks the ticks came each once, in order (at least `atLeast` of them);
   * `about` goes into the error (the terminal's statuses, say).
   */
  async finish(atLeast: number, about = ''): Promise<number[]> {
    writeFileSync(this.stopFile, '');
    await until(
      () => this.terminal.raw().includes('ticks-done'),
      'the ticker to stop',
      20_000,
      () => this.terminal.raw(),
    );
    const raw = this.terminal.raw();
    const seen = ticks(raw);
    if (seen.length < atLeast) throw new Error(`only ${seen.length} ticks came, expected ${atLeast} or more`);
    const broken = seen.findIndex((n, i) => n !== i + 1);
    if (broken >= 0) {
      const at = raw.indexOf(`tick-${seen[broken]}`);
      throw new Error(
        `tick ${broken + 1} came as tick-${seen[broken]}${about ? ` (${about})` : ''}: ${JSON.stringify(raw.slice(Math.max(0, at - 500), at + 300))}`,
      );
    }
    return seen;
  }
}
