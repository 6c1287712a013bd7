import { formatBytes } from '@hangar/shared';
import cliProgress from 'cli-progress';

/** A progress bar on a terminal; on a pipe, one line when it starts and one when it is done. */
export class TransferProgress {
  private bar: cliProgress.SingleBar | undefined;
  private readonly started = Date.now();
  private last = 0;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    if (stream.isTTY) {
      this.bar = new cliProgress.SingleBar(
        {
          stream,
          format: `${label} [{bar}] {percentage}% {done} / {size}`,
          hideCursor: true,
          clearOnComplete: false,
          barsize: 30,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, 0, { done: formatBytes(0), size: formatBytes(total) });
    } else {
      stream.write(`${label} ${formatBytes(total)}…\n`);
    }
  }

  update(done: number): void {
    this.last = done;
    this.bar?.update(done, { done: formatBytes(done), size: formatBytes(this.total) });
  }

  stop(): void {
    if (this.bar) {
      this.bar.update(this.last, { done: formatBytes(this.last), size: formatBytes(this.total) });
      this.bar.stop();
      return;
    }
    const seconds = (Date.now() - this.started) / 1000;
    this.stream.write(`${this.label} done: ${formatBytes(this.last)} in ${seconds.toFixed(1)} s\n`);
  }
}
