import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { logPrinter } from '../src/commands/job-output.js';

/**
 * stdout and stderr of one terminal: what reaches it, in the order it does. A terminal takes a
 * write at once; a pipe's reader (`slow`) takes its time.
 */
function screen(slow = false) {
  const seen: string[] = [];
  const stream = (name: string) =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        if (chunk.length > 0) seen.push(`${name}:${chunk.toString()}`);
        if (slow) setTimeout(done, 5);
        else done();
      },
    }) as unknown as NodeJS.WriteStream;
  return { seen, out: stream('out'), notes: stream('err') };
}

const settled = () => new Promise((resolve) => setTimeout(resolve, 100));

describe('hangar logs --follow / hangar run: the log printer', () => {
  it('the link notes come between the log bytes before them and those after', async () => {
    const { seen, out, notes } = screen();
    const printer = logPrinter(out, notes);
    const consumed: string[] = [];
    printer.attempt?.(1);
    // Pieces that came in one read with the event: batched for this turn's end.
    printer.data({ attempt: 1, data: Buffer.from('one\n') }, () => consumed.push('one'));
    printer.data({ attempt: 1, data: Buffer.from('two') }, () => consumed.push('two'));
    printer.status?.('reconnecting');
    printer.data({ attempt: 1, data: Buffer.from('\nthree\n') }, () => consumed.push('three'));
    await settled();
    printer.status?.('resumed');
    await settled();
    expect(seen).toEqual([
      'out:one\n',
      'out:two',
      'err:\nhangar: link lost — reconnecting…\n',
      'out:\nthree\n',
      'err:hangar: reconnected; log resumed\n',
    ]);
    expect(consumed).toEqual(['one', 'two', 'three']);
  });

  it('into a slow pipe, the note waits for the bytes before it', async () => {
    const { seen, out, notes } = screen(true);
    const printer = logPrinter(out, notes);
    printer.data({ attempt: 1, data: Buffer.from('one\n') }, () => undefined);
    printer.data({ attempt: 1, data: Buffer.from('two') }, () => undefined);
    printer.status?.('reconnecting');
    await settled();
    expect(seen).toEqual(['out:one\n', 'out:two', 'err:\nhangar: link lost — reconnecting…\n']);
  });
});
