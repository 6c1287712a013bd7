import { createHash } from 'node:crypto';

export interface TarEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'link' | 'fifo' | 'chardev';
  body?: string;
  linkpath?: string;
}

const TYPE_FLAG = { file: '0', link: '1', symlink: '2', chardev: '3', dir: '5', fifo: '6' } as const;

/**
 * A ustar archive written by hand: archivers refuse to produce the hostile entries (`../x`,
 * absolute paths) these tests need.
 */
export function tarball(entries: readonly TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '');
    const header = Buffer.alloc(512);
    const field = (value: string, offset: number, length: number) => header.write(value, offset, length, 'utf8');
    const octal = (value: number, offset: number, length: number) =>
      field(value.toString(8).padStart(length - 1, '0') + '\0', offset, length);
    field(entry.path, 0, 100);
    octal(entry.type === 'dir' ? 0o755 : 0o644, 100, 8);
    octal(0, 108, 8);
    octal(0, 116, 8);
    octal(entry.type === 'file' ? body.length : 0, 124, 12);
    octal(Math.floor(Date.now() / 1000), 136, 12);
    field('        ', 148, 8);
    field(TYPE_FLAG[entry.type], 156, 1);
    field(entry.linkpath ?? '', 157, 100);
    field('ustar\0', 257, 6);
    field('00', 263, 2);
    let sum = 0;
    for (const byte of header) sum += byte;
    field(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
    blocks.push(header);
    if (entry.type === 'file' && body.length > 0) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
