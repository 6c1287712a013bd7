/**
 * Output for a terminal that is not shown waits this long before xterm parses it. A session open
 * in two tabs echoes each key in both, and either echo may reach the page first: parsed at once,
 * the hidden one sat ahead of the shown one's (≈ 0.2–0.5 ms) and of the frame that draws it. The
 * same for any hidden tab whose program prints while the user types in another.
 */
export const HIDDEN_OUTPUT_DELAY_MS = 25;
/**
 * Written at once when this much is waiting (a quarter of a terminal stream's window, which is
 * acked at once anyway): a hidden terminal under a flood is not slowed by the delay.
 */
export const HIDDEN_OUTPUT_MAX_BYTES = 64 * 1024;

export type OutputWrite = (data: Uint8Array, done: () => void) => void;

/**
 * Passes a terminal's output to `write`: at once while it is shown, else after
 * HIDDEN_OUTPUT_DELAY_MS (or once HIDDEN_OUTPUT_MAX_BYTES wait), in order. What waits is written
 * as soon as the terminal is shown again. Acks follow `done`, so they wait along with the bytes.
 */
export class HiddenOutput {
  private waiting: [Uint8Array, () => void][] = [];
  private waitingBytes = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private shownNow: boolean;

  constructor(
    private readonly write: OutputWrite,
    shown: boolean,
  ) {
    this.shownNow = shown;
  }

  get shown(): boolean {
    return this.shownNow;
  }

  set shown(shown: boolean) {
    this.shownNow = shown;
    if (shown) this.flush();
  }

  push(data: Uint8Array, done: () => void): void {
    if (this.shownNow && this.waiting.length === 0) {
      this.write(data, done);
      return;
    }
    this.waiting.push([data, done]);
    this.waitingBytes += data.length;
    if (this.shownNow || this.waitingBytes >= HIDDEN_OUTPUT_MAX_BYTES) this.flush();
    else this.timer ??= setTimeout(this.flush, HIDDEN_OUTPUT_DELAY_MS);
  }

  /** Writes what waits now. */
  readonly flush = (): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    const waiting = this.waiting;
    this.waiting = [];
    this.waitingBytes = 0;
    for (const [data, done] of waiting) this.write(data, done);
  };

  /** Drops what waits (the terminal is going away). */
  dispose(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting = [];
    this.waitingBytes = 0;
  }
}
