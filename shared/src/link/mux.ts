import { Emitter, type Disposable } from '../disposable.js';
import { HangarError, toHangarError } from '../errors.js';
import {
  ACK_FRAME_BYTES,
  decodeFrame,
  encodeDataHead,
  encodeFrame,
  MAX_FRAME_BYTES,
  MAX_STREAM_ID,
  type Frame,
} from '../frames.js';
import type { CloseReason } from '../protocol/control.js';
import { decodeReason, encodeReason } from './close-reason.js';
import { ControlBacklog, DEFAULT_CONTROL_BACKLOG, type ControlBacklogLimits } from './control-backlog.js';
import type { ReadLease } from './read-lease.js';
import { DataScheduler, Heartbeat } from './scheduler.js';
import { DEFAULT_STREAM_WINDOW, LinkStream, reportLater, type StreamHost } from './stream.js';
import type { FrameTransport } from './transport.js';

export interface MuxOptions {
  /** Streams opened by the client get odd ids, by the agent even ones; 0 is the control stream. */
  role: 'client' | 'agent';
  /** Send a ping when nothing was sent for this long. */
  heartbeatIntervalMs?: number;
  /** Nothing received for this long: the link is dead (noticed at most half the shorter of the two periods later). */
  deadAfterMs?: number;
  maxDataFrameBytes?: number;
  /** Data frames go to the transport only while its bufferedAmount is below this. */
  transportHighWater?: number;
  /** Priority frames queued for a peer that is not reading, past which the link closes. */
  maxControlBacklog?: ControlBacklogLimits;
}

export interface OpenStreamOptions {
  id?: number;
  sendOffset?: number;
  recvOffset?: number;
  window?: number;
  /** Largest data frame this end sends on the stream (default: the mux's); bulk senders use BULK_FRAME_BYTES. */
  maxFrameBytes?: number;
}

const DEFAULTS = {
  heartbeatIntervalMs: 2000,
  deadAfterMs: 6000,
  maxDataFrameBytes: 32 * 1024,
  transportHighWater: 64 * 1024,
  maxControlBacklog: DEFAULT_CONTROL_BACKLOG,
};
/** Ids of streams closed here, remembered so the peer's in-flight frames for them are not errors. */
const RECENTLY_CLOSED_LIMIT = 1024;
const MAX_UNCLAIMED_CONTROL = 1024;
/** Nonces of ping() start here, far above the heartbeat's (which count from 1), so their pongs are told apart. */
const PING_NONCE_BASE = 2 ** 40;

/**
 * Many independent streams over one FrameTransport. Priority frames (control, ack, close,
 * ping, pong) go out at once, up to a bounded backlog for a peer that stops reading them
 * (ControlBacklog); data goes round-robin, one chunk per stream per turn, and only while the
 * transport holds less than transportHighWater, so a flood on one stream leaves at most that
 * much ahead of a keystroke on another.
 */
export class Mux implements Disposable {
  private readonly options: Required<Omit<MuxOptions, 'role'>>;
  private readonly streams = new Map<number, LinkStream>();
  private readonly recentlyClosed = new Set<number>();
  private readonly scheduler: DataScheduler;
  private readonly backlog: ControlBacklog;
  private readonly controlEmitter = new Emitter<string>();
  private readonly closeEmitter = new Emitter<CloseReason>();
  private readonly subscriptions: Disposable[] = [];
  /**
   * Control messages, in order. Messages that arrive before anyone listens (a transport may
   * replay frames the moment the mux subscribes, before its owner calls onControl) are kept and
   * handed to the first listener.
   */
  readonly onControl = (listener: (json: string) => void): Disposable => {
    const subscription = this.controlEmitter.event(listener);
    while (this.unclaimedControl.length > 0 && !this.closed) this.deliverControl(this.unclaimedControl.shift()!);
    return subscription;
  };
  private unclaimedControl: string[] = [];
  /** Fires once. A listener that throws is reported asynchronously so the others still run. */
  readonly onClose = (listener: (reason: CloseReason) => void): Disposable =>
    this.closeEmitter.event((reason) => {
      try {
        listener(reason);
      } catch (error) {
        reportLater(error);
      }
    });

  private nextStreamId: number;
  private nextPingNonce = PING_NONCE_BASE;
  private readonly pongWaiters = new Map<number, { resolve: () => void; reject: (error: HangarError) => void }>();
  private closeReason: CloseReason | undefined;
  private heartbeat: Heartbeat | undefined;

  private readonly streamHost: StreamHost = {
    sendAck: (stream, offset) => this.sendAck(stream, offset),
    sendClose: (stream, reason) => this.sendPriority({ type: 'close', stream, reason: encodeReason(reason) }),
    wantsToSend: (stream) => this.scheduler.add(stream),
    wantsToSendNow: (stream) => this.scheduler.addNow(stream),
    release: (stream) => {
      this.scheduler.remove(stream);
      if (this.streams.get(stream.id) !== stream) return;
      this.streams.delete(stream.id);
      this.forget(stream.id);
    },
  };

  private forget(id: number): void {
    this.recentlyClosed.add(id);
    if (this.recentlyClosed.size > RECENTLY_CLOSED_LIMIT) {
      this.recentlyClosed.delete(this.recentlyClosed.values().next().value!);
    }
  }

  constructor(
    private readonly transport: FrameTransport,
    options: MuxOptions,
  ) {
    const { role, ...tuning } = options;
    this.options = { ...DEFAULTS, ...stripUndefined(tuning) };
    this.scheduler = new DataScheduler(transport, {
      maxDataFrameBytes: this.options.maxDataFrameBytes,
      transportHighWater: this.options.transportHighWater,
      sendData: (stream, offset, payload) => this.sendData(stream.id, offset, payload),
    });
    this.backlog = new ControlBacklog(transport, this.options.transportHighWater, this.options.maxControlBacklog);
    this.nextStreamId = role === 'client' ? 1 : 2;
    this.subscriptions.push(
      transport.onFrame((bytes) => this.receive(bytes)),
      ...(transport.onDataPart
        ? [
            transport.onDataPart((stream, offset, payload, lease) => {
              if (this.closed) return;
              this.heartbeat?.received();
              this.receiveOnStream('data', stream, offset, payload, lease);
            }),
          ]
        : []),
      ...(transport.onAck
        ? [
            transport.onAck((stream, offset) => {
              if (this.closed) return;
              this.heartbeat?.received();
              this.receiveOnStream('ack', stream, offset);
            }),
          ]
        : []),
      transport.onDrain(() => {
        this.backlog.drained();
        this.scheduler.schedule();
      }),
      transport.onClose((reason) => this.shutdown(reason, false)),
    );
    if (transport.closed) this.shutdown({ code: 'closed', message: 'transport was already closed' }, false);
    // Subscribing may replay frames already received, and one of them may have ended the link.
    if (this.closed) {
      for (const subscription of this.subscriptions) void subscription.dispose();
      return;
    }
    const { heartbeatIntervalMs, deadAfterMs } = this.options;
    this.heartbeat = new Heartbeat({
      intervalMs: heartbeatIntervalMs,
      deadAfterMs,
      sendPing: (nonce) => this.sendPriority({ type: 'ping', nonce }),
      onSilence: () =>
        this.shutdown({ code: 'E_TIMEOUT', message: `link silent for ${Math.round(deadAfterMs / 100) / 10} s` }, true),
    });
  }

  get closed(): boolean {
    return this.closeReason !== undefined;
  }

  sendControl(json: string): void {
    if (this.closed)
      throw new HangarError('E_UNAVAILABLE', `link is closed (${this.closeReason!.message}); control message not sent`);
    this.sendPriority({ type: 'control', json });
  }

  openStream(options: OpenStreamOptions = {}): LinkStream {
    if (this.closed)
      throw new HangarError('E_UNAVAILABLE', `link is closed (${this.closeReason!.message}); cannot open a stream`);
    const id = options.id ?? this.allocateId();
    if (!Number.isInteger(id) || id <= 0 || id > MAX_STREAM_ID) {
      throw new HangarError('E_BAD_REQUEST', `stream id ${id} must be an integer from 1 to ${MAX_STREAM_ID}`);
    }
    if (this.streams.has(id)) throw new HangarError('E_EXISTS', `stream ${id} is already open on this link`);
    const window = options.window ?? DEFAULT_STREAM_WINDOW;
    if (!Number.isSafeInteger(window) || window <= 0)
      throw new HangarError('E_BAD_REQUEST', `window ${window} must be positive`);
    for (const offset of [options.sendOffset, options.recvOffset]) {
      if (offset !== undefined && (!Number.isSafeInteger(offset) || offset < 0)) {
        throw new HangarError('E_BAD_REQUEST', `stream offset ${offset} must be a non-negative safe integer`);
      }
    }
    this.recentlyClosed.delete(id);
    const stream = new LinkStream(this.streamHost, {
      id,
      window,
      // 13 bytes of data frame header must fit under the largest frame a peer accepts.
      ...(options.maxFrameBytes !== undefined
        ? { maxFrameBytes: Math.min(options.maxFrameBytes, MAX_FRAME_BYTES - 13) }
        : {}),
      sendOffset: options.sendOffset ?? 0,
      recvOffset: options.recvOffset ?? 0,
    });
    this.streams.set(id, stream);
    return stream;
  }

  /** Streams open on this link now (not the control stream): a link being retired waits for none. */
  get openStreamCount(): number {
    let open = 0;
    for (const stream of this.streams.values()) if (!stream.closed) open++;
    return open;
  }

  /**
   * A round trip on the priority path: resolves when the peer's pong comes back, rejects if the
   * link closes first. The caller times it (the link's RTT) and keeps at most a few in flight.
   */
  ping(): Promise<void> {
    if (this.closed)
      return Promise.reject(new HangarError('E_UNAVAILABLE', `link is closed (${this.closeReason!.message}); no ping`));
    const nonce = this.nextPingNonce++;
    return new Promise<void>((resolve, reject) => {
      this.pongWaiters.set(nonce, { resolve, reject });
      this.sendPriority({ type: 'ping', nonce });
    });
  }

  getStream(id: number): LinkStream | undefined {
    const stream = this.streams.get(id);
    return stream && !stream.closed ? stream : undefined;
  }

  /** Ends every stream with `reason`, tells the peer why, and closes the transport. */
  close(reason: CloseReason = { code: 'closed', message: 'link closed by this side' }): void {
    this.shutdown(reason, true);
  }

  dispose(): void {
    this.close();
  }

  private allocateId(): number {
    while (this.streams.has(this.nextStreamId)) this.nextStreamId += 2;
    const id = this.nextStreamId;
    if (id > MAX_STREAM_ID) throw new HangarError('E_UNAVAILABLE', 'this link has used all its stream ids; reconnect');
    this.nextStreamId += 2;
    return id;
  }

  /** Control, acks, closes, pings, pongs: sent at once, as long as the peer reads them. */
  private sendPriority(frame: Frame): void {
    if (this.closed) return;
    this.sendFrame(frame, this.backlog);
  }

  private sendFrame(frame: Frame, backlog?: ControlBacklog): void {
    let overflow: CloseReason | undefined;
    try {
      const bytes = encodeFrame(frame);
      overflow = backlog?.add(bytes.length);
      if (overflow === undefined) {
        this.transport.send(bytes);
        this.heartbeat?.sent();
      }
    } catch (error) {
      this.cannotSend(frame.type, error);
      return;
    }
    if (overflow) this.shutdown(overflow, true);
  }

  /**
   * An ack (priority, as sendPriority): written by the transport into its own buffer when it can,
   * without a frame object and array per ack (one rides every keystroke and every echo).
   */
  private sendAck(stream: number, offset: number): void {
    if (this.closed) return;
    if (this.transport.sendAck === undefined) {
      this.sendFrame({ type: 'ack', stream, offset }, this.backlog);
      return;
    }
    let overflow: CloseReason | undefined;
    try {
      overflow = this.backlog.add(ACK_FRAME_BYTES);
      if (overflow === undefined) {
        this.transport.sendAck(stream, offset);
        this.heartbeat?.sent();
      }
    } catch (error) {
      this.cannotSend('ack', error);
      return;
    }
    if (overflow) this.shutdown(overflow, true);
  }

  /** The transport refused a frame (or it could not be encoded): the link cannot go on. */
  private cannotSend(type: Frame['type'], error: unknown): void {
    const article = type === 'ack' ? 'an' : 'a';
    this.shutdown(
      { code: 'E_INTERNAL', message: `could not send ${article} ${type} frame: ${toHangarError(error).message}` },
      true,
    );
  }

  /** A data frame: as head and payload when the transport takes parts (no copy of the payload). */
  private sendData(stream: number, offset: number, payload: Uint8Array): void {
    if (this.transport.sendData === undefined && this.transport.sendParts === undefined) {
      this.sendFrame({ type: 'data', stream, offset, payload });
      return;
    }
    try {
      if (this.transport.sendData) this.transport.sendData(stream, offset, payload);
      else this.transport.sendParts!(encodeDataHead(stream, offset), payload);
      this.heartbeat?.sent();
    } catch (error) {
      this.cannotSend('data', error);
    }
  }

  private receive(bytes: Uint8Array): void {
    if (this.closed) return;
    this.heartbeat?.received();
    let frame: Frame;
    try {
      frame = decodeFrame(bytes);
    } catch (error) {
      this.shutdown(
        { code: 'E_PROTOCOL', message: `peer sent a malformed frame: ${toHangarError(error).message}` },
        true,
      );
      return;
    }
    switch (frame.type) {
      case 'control':
        if (this.controlEmitter.hasListeners) this.deliverControl(frame.json);
        else if (this.unclaimedControl.length < MAX_UNCLAIMED_CONTROL) this.unclaimedControl.push(frame.json);
        else
          this.shutdown(
            {
              code: 'E_PROTOCOL',
              message: `peer sent over ${MAX_UNCLAIMED_CONTROL} control messages before anyone listened`,
            },
            true,
          );
        return;
      case 'ping':
        this.sendPriority({ type: 'pong', nonce: frame.nonce });
        return;
      case 'pong': {
        // Liveness was recorded above; a pong to ping() also ends its round trip.
        const waiter = this.pongWaiters.get(frame.nonce);
        this.pongWaiters.delete(frame.nonce);
        waiter?.resolve();
        return;
      }
      case 'close':
        this.receiveClose(frame.stream, frame.reason);
        return;
      case 'data':
        this.receiveOnStream('data', frame.stream, frame.offset, frame.payload);
        return;
      case 'ack':
        this.receiveOnStream('ack', frame.stream, frame.offset);
        return;
    }
  }

  /** A data frame (or a piece of one) or an ack for a stream. */
  private receiveOnStream(
    type: 'data' | 'ack',
    id: number,
    offset: number,
    payload?: Uint8Array,
    lease?: ReadLease,
  ): void {
    if (id === 0) {
      this.shutdown({ code: 'E_PROTOCOL', message: `peer sent a ${type} frame on the control stream 0` }, true);
      return;
    }
    const stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.recentlyClosed.has(id)) return; // crossed our close frame on the wire
      this.forget(id); // one refusal per stream, not one per frame of a flood
      this.sendPriority({
        type: 'close',
        stream: id,
        reason: encodeReason({
          code: 'E_PROTOCOL',
          message: `stream ${id} is not open (${type} frame dropped)`,
        }),
      });
      return;
    }
    if (type === 'data') stream.receiveData(offset, payload!, lease);
    else stream.receiveAck(offset);
  }

  private deliverControl(json: string): void {
    try {
      this.controlEmitter.fire(json);
    } catch (error) {
      // The control stream has no per-message error channel; a broken handler ends the link loudly.
      this.shutdown(
        { code: 'E_INTERNAL', message: `control message handler failed: ${toHangarError(error).message}` },
        true,
      );
    }
  }

  private receiveClose(id: number, json: string): void {
    const reason = decodeReason(json, id);
    if (id === 0) {
      // The peer's last words before it closes the transport.
      this.shutdown(reason, true);
      return;
    }
    this.streams.get(id)?.receiveClose(reason);
  }

  private shutdown(reason: CloseReason, closeTransport: boolean): void {
    if (this.closed) return;
    this.closeReason = reason;
    this.heartbeat?.dispose();
    this.scheduler.dispose();
    let final = reason;
    if (closeTransport && !this.transport.closed) {
      try {
        // Tell the peer why before the transport goes (its own close reason may be truncated).
        this.transport.send(encodeFrame({ type: 'close', stream: 0, reason: encodeReason(reason) }));
        this.transport.close(reason);
      } catch (error) {
        final = {
          ...reason,
          message: `${reason.message} (closing the transport failed: ${toHangarError(error).message})`,
        };
      }
    }
    for (const subscription of this.subscriptions) void subscription.dispose();
    for (const stream of [...this.streams.values()]) stream.linkClosed(final);
    this.streams.clear();
    for (const waiter of this.pongWaiters.values())
      waiter.reject(new HangarError('E_UNAVAILABLE', `link closed before the pong (${final.message})`));
    this.pongWaiters.clear();
    this.closeEmitter.fire(final);
    this.unclaimedControl = [];
    this.controlEmitter.dispose();
    this.closeEmitter.dispose();
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
