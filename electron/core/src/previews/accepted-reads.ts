import type { PooledReads } from '@hangar/shared';
import type { Socket } from 'node:net';

/** The socket's own keys for `onread` (Node's lib/net.js: kBuffer, kBufferCb, kBufferGen). */
interface OnreadKeys {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

interface ReadHandle {
  reading?: boolean;
  useUserBuffer?(buffer: Uint8Array): void;
}

let keys: OnreadKeys | null | undefined;

function onreadKeys(socket: Socket): OnreadKeys | null {
  if (keys !== undefined) return keys;
  const own = Object.getOwnPropertySymbols(socket);
  const find = (name: string) => own.find((key) => key.description === name);
  const buffer = find('kBuffer');
  const callback = find('kBufferCb');
  const generator = find('kBufferGen');
  keys = buffer && callback && generator ? { buffer, callback, generator } : null;
  return keys;
}

/**
 * Makes an accepted socket read into `reads`' pooled buffers, as `net.connect({ onread })` does
 * for a socket it dials (Node's net.Server has no `onread`): each read is handed to
 * `reads.onread.callback` straight from the handle, with no 'data' event, no stream buffer and no
 * `process.nextTick` per read, and no fresh buffer per read either. It sets what Node's
 * `initSocketHandle` sets for `onread` (the socket's kBuffer, kBufferCb and kBufferGen, then the
 * handle's `useUserBuffer`), from which Node's read callback (onStreamRead), `pause()` and
 * `resume()` take it (read in Node 20's lib/net.js and stream_base_commons.js). The socket must not have started reading (a server with
 * `pauseOnConnect`); `resume()` starts it. False, and the socket untouched, when this Node's
 * socket lacks any of these: it then reads as sockets do ('data').
 */
export function readAcceptedIntoPool(socket: Socket, reads: PooledReads): boolean {
  const handle = (socket as unknown as { _handle?: ReadHandle | null })._handle;
  if (!handle || handle.reading !== false || typeof handle.useUserBuffer !== 'function') return false;
  const found = onreadKeys(socket);
  if (found === null) return false;
  const fields = socket as unknown as Record<symbol, unknown>;
  // Node leaves them null unless the socket was made with `onread`.
  if (fields[found.buffer] !== null || fields[found.callback] !== null || fields[found.generator] !== null)
    return false;
  const first = reads.onread.buffer();
  handle.useUserBuffer(first);
  fields[found.generator] = reads.onread.buffer;
  fields[found.callback] = reads.onread.callback;
  fields[found.buffer] = first;
  return true;
}
