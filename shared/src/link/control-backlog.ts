import type { CloseReason } from '../protocol/control.js';
import type { FrameTransport } from './transport.js';

/** The close code of a link whose peer stopped reading what it asked for; clients show it. */
export const LINK_BACKLOG_CLOSE_CODE = 'E_LINK_BACKLOG';

export interface ControlBacklogLimits {
  /** Bytes of priority frames queued while the transport is backed up. */
  bytes: number;
  /** The same, in frames: a queued small frame costs the sender some hundreds of bytes of bookkeeping. */
  frames: number;
}

/**
 * Data frames wait for credit and for the transport to drain, but priority frames (answers,
 * acks, pongs, events) go out at once, and many of them are asked for by the peer: a peer that
 * sends pings or requests and never reads would have them queue here without end (300,000 pings
 * held ~30 MB before this bound). 8 MiB or 8,192 frames queued while the transport stays backed
 * up is far beyond what a reading peer ever has waiting (a listing is tens of KB, control
 * requests in flight are capped at 64), and costs at most ~12 MB here.
 */
export const DEFAULT_CONTROL_BACKLOG: ControlBacklogLimits = { bytes: 8 * 1024 * 1024, frames: 8192 };

/**
 * Counts the priority frames handed to the transport since it was last nearly empty. The count
 * starts over whenever the transport is below its high-water mark (the peer is keeping up), so
 * only frames queued behind a peer that has stopped reading add up.
 */
export class ControlBacklog {
  private bytes = 0;
  private frames = 0;

  constructor(
    private readonly transport: FrameTransport,
    private readonly highWater: number,
    private readonly limits: ControlBacklogLimits,
  ) {}

  /** Records a priority frame about to be sent; returns why the link must close if it is one too many. */
  add(frameBytes: number): CloseReason | undefined {
    if (this.transport.bufferedAmount < this.highWater) {
      this.drained();
      return undefined;
    }
    this.bytes += frameBytes;
    this.frames += 1;
    if (this.bytes <= this.limits.bytes && this.frames <= this.limits.frames) return undefined;
    return {
      code: LINK_BACKLOG_CLOSE_CODE,
      message:
        `the peer is not reading: ${this.frames} control frames (${Math.ceil(this.bytes / 1024)} KiB) ` +
        `were waiting for it, over the limit of ${this.limits.frames} frames or ${this.limits.bytes / (1024 * 1024)} MiB; ` +
        'reconnect (a device that was asleep or a stalled network does this)',
    };
  }

  /** The transport fell below its high-water mark: what was queued has gone. */
  drained(): void {
    this.bytes = 0;
    this.frames = 0;
  }
}
