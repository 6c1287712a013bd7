import { HangarError } from './errors.js';

/**
 * A compressed job log on the wire (job.logs with `compression: 'deflate'`): the stream carries
 * blocks, each one piece of the log that can be decoded on its own.
 *
 *   [u8 kind][u32 log bytes][u32 body bytes][body]     kind 0: body is the log bytes as they are
 *                                                      kind 1: body is raw DEFLATE (RFC 1951) of them
 *
 * Independent blocks keep no compression state between them (nothing held per follower while a
 * job is quiet) and let the agent send incompressible stretches as they are. The stream's own
 * offsets count block bytes; log offsets are carried by the blocks' lengths.
 */
export const LOG_BLOCK = { raw: 0, deflate: 1 } as const;
export type LogBlockKind = (typeof LOG_BLOCK)[keyof typeof LOG_BLOCK];

export const LOG_BLOCK_HEADER_BYTES = 9;
/** Largest piece of log in one block; a receiver refuses more (it bounds what one block inflates to). */
export const MAX_LOG_BLOCK_BYTES = 4 * 1024 * 1024;

export interface LogBlock {
  kind: LogBlockKind;
  /** Bytes of log the block decodes to. */
  logBytes: number;
  body: Uint8Array;
  /** Stream offset just after this block: ack it once the block's log bytes are consumed. */
  end: number;
}

export function encodeLogBlockHeader(kind: LogBlockKind, logBytes: number, bodyBytes: number): Uint8Array {
  const bytes = new Uint8Array(LOG_BLOCK_HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, kind);
  view.setUint32(1, logBytes);
  view.setUint32(5, bodyBytes);
  return bytes;
}

function refuse(message: string): never {
  throw new HangarError('E_PROTOCOL', `compressed log: ${message}`);
}

/**
 * Cuts a stream of bytes into blocks, whatever the sizes the bytes arrive in. Checks each header
 * before waiting for its body, so a lying peer cannot make us buffer more than one block.
 */
export class LogBlockReader {
  private parts: Uint8Array[] = [];
  private buffered = 0;
  private consumed = 0;
  /** Body bytes of a raw block still to come (rawPieces only). */
  private rawLeft = 0;

  /**
   * `rawPieces`: a raw block's body comes out as it arrives, in pieces (each a raw block of its
   * own bytes, with the stream offset after it), instead of gathered (copied) into one buffer:
   * nothing needs a raw block whole, and an incompressible log is mostly raw blocks of 1 MiB.
   */
  constructor(private readonly options: { rawPieces?: boolean } = {}) {}

  /** Adds bytes; returns the blocks they complete, in order. Throws E_PROTOCOL on a bad header. */
  push(data: Uint8Array): LogBlock[] {
    if (data.length > 0) {
      this.parts.push(data);
      this.buffered += data.length;
    }
    const blocks: LogBlock[] = [];
    for (;;) {
      while (this.rawLeft > 0 && this.buffered > 0) {
        const size = Math.min(this.rawLeft, this.parts[0]!.length);
        this.rawLeft -= size;
        const body = this.take(size);
        blocks.push({ kind: LOG_BLOCK.raw, logBytes: size, body, end: this.consumed });
      }
      if (this.rawLeft > 0) return blocks;
      if (this.buffered < LOG_BLOCK_HEADER_BYTES) return blocks;
      const head = this.peek(LOG_BLOCK_HEADER_BYTES);
      const view = new DataView(head.buffer, head.byteOffset, head.length);
      const kind = view.getUint8(0);
      const logBytes = view.getUint32(1);
      const bodyBytes = view.getUint32(5);
      if (kind !== LOG_BLOCK.raw && kind !== LOG_BLOCK.deflate) refuse(`unknown block kind ${kind}`);
      if (logBytes === 0 || logBytes > MAX_LOG_BLOCK_BYTES) {
        refuse(`a block of ${logBytes} log bytes (1 to ${MAX_LOG_BLOCK_BYTES} allowed)`);
      }
      if (kind === LOG_BLOCK.raw ? bodyBytes !== logBytes : bodyBytes === 0 || bodyBytes > MAX_LOG_BLOCK_BYTES) {
        refuse(
          `a ${kind === LOG_BLOCK.raw ? 'raw' : 'deflate'} block of ${logBytes} bytes with a ${bodyBytes}-byte body`,
        );
      }
      if (kind === LOG_BLOCK.raw && this.options.rawPieces) {
        this.take(LOG_BLOCK_HEADER_BYTES);
        this.rawLeft = bodyBytes;
        continue;
      }
      if (this.buffered < LOG_BLOCK_HEADER_BYTES + bodyBytes) return blocks;
      this.take(LOG_BLOCK_HEADER_BYTES);
      const body = this.take(bodyBytes);
      blocks.push({ kind, logBytes, body, end: this.consumed });
    }
  }

  /** Bytes received that do not make a whole block yet (or, with rawPieces, bytes of a raw block still to come). */
  get pending(): number {
    return this.buffered + this.rawLeft;
  }

  private peek(size: number): Uint8Array {
    const first = this.parts[0]!;
    if (first.length >= size) return first.subarray(0, size);
    return this.gather(size, false);
  }

  private take(size: number): Uint8Array {
    const first = this.parts[0]!;
    let out: Uint8Array;
    if (first.length >= size) {
      out = first.subarray(0, size);
      if (first.length === size) this.parts.shift();
      else this.parts[0] = first.subarray(size);
    } else {
      out = this.gather(size, true);
    }
    this.buffered -= size;
    this.consumed += size;
    return out;
  }

  /** Copies `size` bytes from the front parts into one array, removing them when `remove`. */
  private gather(size: number, remove: boolean): Uint8Array {
    const out = new Uint8Array(size);
    let at = 0;
    let index = 0;
    while (at < size) {
      const part = this.parts[index]!;
      const n = Math.min(part.length, size - at);
      out.set(part.subarray(0, n), at);
      at += n;
      if (remove) {
        if (n === part.length) this.parts.shift();
        else this.parts[0] = part.subarray(n);
      } else {
        index++;
      }
    }
    return out;
  }
}
