import { Emitter, type Disposable } from '@hangar/shared';
import type { Logger } from 'pino';
import { AppendedLines } from './appended-lines.js';

/**
 * Events from a file that hooks outside the agent append lines to (AppendedLines): `parse` turns
 * each batch of new lines into events, fired in its order.
 */
export class AppendedEvents<T> implements Disposable {
  private readonly emitter = new Emitter<T>();
  protected readonly onEvent = this.emitter.event;
  private readonly lines: AppendedLines;

  constructor(
    file: string,
    logger: Logger | undefined,
    options: {
      parse: (lines: string[]) => Iterable<T>;
      truncateAt: number;
      what: string;
    },
  ) {
    const { parse, ...rest } = options;
    this.lines = new AppendedLines(file, {
      ...rest,
      onLines: (lines) => {
        for (const event of parse(lines)) this.emitter.fire(event);
      },
      logger,
    });
  }

  get file(): string {
    return this.lines.file;
  }

  dispose(): void {
    this.lines.dispose();
    this.emitter.dispose();
  }
}
