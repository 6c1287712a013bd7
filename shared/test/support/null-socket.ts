import type { DuplexByteSocket } from '@hangar/shared';

/**
 * A byte socket (the link's TLS socket, the door's Unix socket) whose writes finish at once and
 * which emits nothing: the test hands reads in itself, through LeasedReads.
 */
export class NullSocket implements DuplexByteSocket {
  writableLength = 0;
  write(_data: Uint8Array, done: () => void): boolean {
    done();
    return true;
  }
  end(): void {}
  destroy(): void {}
  on(): unknown {
    return this;
  }
}
