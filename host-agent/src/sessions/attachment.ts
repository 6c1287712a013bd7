import { randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import nodePty from 'node-pty';
import type { IPty } from 'node-pty';
import { Emitter, keyTrace, toDisposable, type Disposable } from '@hangar/shared';
import type { Logger } from 'pino';
import { PtyInput } from './pty-input.js';
import { ReplayBuffer } from './replay-buffer.js';
import type { SizeDriver } from './size-driver.js';
import { isTerminalReply } from './terminal-replies.js';
import { tmuxEnv, type Tmux } from './tmux.js';

export interface AttachmentEnd {
  exitCode: number | null;
  reason: 'exited' | 'killed' | 'detached';
}

/** One tmux client in a pty, seen by one app client; output is addressed by absolute byte offset. */
export interface Attachment {
  readonly id: string;
  readonly sessionName: string;
  readonly producedOffset: number;
  readonly ackedOffset: number;
  onOutput(listener: (chunk: Uint8Array, offset: number) => void): Disposable;
  readFrom(offset: number): Uint8Array | undefined;
  ack(offset: number): void;
  input(data: Uint8Array): void;
  resize(cols: number, rows: number): void;
  /** Makes tmux repaint this client's whole screen (after the app drew a notice over it). */
  redraw(): Promise<void>;
  setConnected(connected: boolean): void;
  readonly onEnd: (listener: (e: AttachmentEnd) => void) => Disposable;
  /** Resolves once the tmux client has exited and onEnd has fired. */
  readonly closed: Promise<void>;
  detach(): void;
  /**
   * Readies a move onto a lane: keys already passed to input() reach the pty. True if this
   * client drives the session's size then (keys from a lane reach the pty master without
   * input(), so a client that does not drive could not take the size by typing).
   */
  prepareLane(): Promise<boolean>;
  /** Another client typed and drives the session's size now (see SizeDriver). */
  readonly onDriveLost: (listener: () => void) => Disposable;
  /**
   * Stops reading the pty in JavaScript (what node-pty had read is delivered through onOutput
   * first) and returns its master fd for a native relay, or undefined if there is none (ended, or
   * a node-pty without one). From then on output goes around the replay buffer: the attachment
   * cannot be resumed from an offset.
   */
  leavePty(): number | undefined;
}

export interface AttachmentLimits {
  replayLimitBytes: number;
  replayWindowMs: number;
  liveWindowBytes: number;
}

/** node-pty's Unix terminal beyond IPty: its master fd and the tty stream reading it (see PtyInput). */
interface PtyReader {
  fd?: unknown;
  _socket?: {
    destroyed?: unknown;
    pause(): void;
    read(): unknown;
    _handle?: { reading?: boolean; readStop(): number };
  };
}

/** Output this soon after a keystroke is its echo or answer: reads are never batched then. */
const INTERACTIVE_MS = 20;
/** Longest a flood's output waits so that one read takes several of tmux's small updates. */
const READ_BATCH_MS = 2;

/** After SIGHUP a tmux client exits in milliseconds; this bounds shutdown if it does not. */
const KILL_GRACE_MS = 2_000;

export class PtyAttachment implements Attachment {
  /** 128 random bits: the id alone lets a client resume a stream, so it must not be guessable. */
  readonly id = randomBytes(16).toString('base64url');
  private readonly buffer = new ReplayBuffer();
  private readonly outputEmitter = new Emitter<{ chunk: Uint8Array; offset: number }>();
  private readonly endEmitter = new Emitter<AttachmentEnd>();
  private readonly driveLostEmitter = new Emitter<void>();
  readonly onDriveLost = (listener: () => void): Disposable => this.driveLostEmitter.event(listener);
  private readonly pty: IPty;
  private readonly ptyInput: PtyInput;
  private tty: string | undefined;
  /** Input waiting for a size hand-over to finish (see SizeDriver). */
  private inputChain: Promise<void> | undefined;
  private connected = true;
  private paused = false;
  /** Reading paused briefly to batch a flood's small updates (see throttleReads). */
  private readThrottled = false;
  private readTimer: NodeJS.Timeout | undefined;
  /** When the first output after the last keystroke was read (see throttleReads). */
  private lastInputAt = 0;
  /** A keystroke came and no output has been read since. */
  private inputSinceOutput = false;
  private detachRequested = false;
  /** The pty is read by a lane's native relay, not here (leavePty). */
  private laned = false;
  private windowTimer: NodeJS.Timeout | undefined;
  private endResult: AttachmentEnd | undefined;
  /** Resolves once the pty has exited and onEnd has fired. */
  readonly closed: Promise<void>;

  constructor(
    private readonly tmux: Tmux,
    readonly sessionName: string,
    readonly tmuxSessionName: string,
    size: { cols: number; rows: number },
    private readonly limits: AttachmentLimits,
    /** Decides why the client went away (exit code, kill, detach) once its pty has exited. */
    private readonly resolveEnd: (detachRequested: boolean) => Promise<AttachmentEnd>,
    private readonly logger: Logger | undefined,
    private readonly sizing: SizeDriver,
  ) {
    const drives = sizing.claimOnAttach(tmuxSessionName, this);
    // Each attachment is its own tmux client, so tmux redraws each one for its own size and
    // pace; `=` makes the target an exact name (plain -t would also match by prefix).
    this.pty = nodePty.spawn(
      tmux.binary,
      [...tmux.baseArgs(), 'attach-session', ...(drives ? [] : ['-f', 'ignore-size']), '-t', `=${tmuxSessionName}`],
      {
        name: 'xterm-256color',
        cols: size.cols,
        rows: size.rows,
        cwd: homedir(),
        env: tmuxEnv({ TERM: 'xterm-256color' }),
        // Raw bytes: offsets count bytes, and a chunk may end inside a UTF-8 sequence.
        encoding: null,
      },
    );
    this.ptyInput = new PtyInput(this.pty, (error) =>
      this.logger?.warn({ err: error, session: sessionName }, 'could not write input to the session'),
    );
    this.pty.onData((data) => this.handleOutput(data as unknown as Buffer));
    this.closed = new Promise((resolve) => {
      this.pty.onExit(() => {
        this.ptyInput.dispose();
        this.clearWindowTimer();
        clearTimeout(this.readTimer);
        this.sizing.release(tmuxSessionName, this);
        void this.resolveEnd(this.detachRequested)
          .catch((error: unknown): AttachmentEnd => {
            this.logger?.warn({ err: error, session: sessionName }, 'could not tell why the attachment ended');
            return { exitCode: null, reason: 'detached' };
          })
          .then((result) => {
            this.endResult = result;
            this.logger?.info({ session: sessionName, attachment: this.id, ...result }, 'attachment ended');
            this.endEmitter.fire(result);
            this.outputEmitter.dispose();
            this.endEmitter.dispose();
            this.driveLostEmitter.dispose();
            resolve();
          });
      });
    });
  }

  get producedOffset(): number {
    return this.buffer.producedOffset;
  }

  get ackedOffset(): number {
    return this.buffer.heldFrom;
  }

  get ended(): boolean {
    return this.endResult !== undefined;
  }

  onOutput(listener: (chunk: Uint8Array, offset: number) => void): Disposable {
    return this.outputEmitter.event(({ chunk, offset }) => listener(chunk, offset));
  }

  readonly onEnd = (listener: (e: AttachmentEnd) => void): Disposable => {
    const result = this.endResult;
    if (result) {
      // Late subscribers still learn how it ended, asynchronously like everyone else.
      let cancelled = false;
      queueMicrotask(() => {
        if (!cancelled) listener(result);
      });
      return toDisposable(() => {
        cancelled = true;
      });
    }
    return this.endEmitter.event(listener);
  };

  readFrom(offset: number): Uint8Array | undefined {
    return this.laned ? undefined : this.buffer.readFrom(offset);
  }

  ack(offset: number): void {
    this.buffer.release(offset);
    this.updateFlow();
  }

  input(data: Uint8Array): void {
    keyTrace?.('input', data.length);
    if (this.ended) return;
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    // No clock read here, on the keystroke's way to the pty (10-17 µs after a pause): the
    // interactive spell is timed from the first output after it (throttleReads).
    this.inputSinceOutput = true;
    if (this.readThrottled) {
      // The answer to this keystroke must not wait for the batch.
      clearTimeout(this.readTimer);
      this.readThrottled = false;
      if (!this.paused) this.pty.resume();
    }
    if (!this.inputChain && (this.sizing.isDriver(this.tmuxSessionName, this) || isTerminalReply(bytes))) {
      // Writes go to the pty master directly; a paused read side never delays them. A terminal's
      // answer to tmux's queries is not typing: a view that merely attached (a hidden tab, a
      // terminal window answering on its own) must not take the size from the one being typed in.
      this.ptyInput.write(bytes);
      keyTrace?.('pty.written', bytes.length);
      return;
    }
    // This client starts typing: it becomes the size driver first, keeping keystrokes in order
    // (an answer behind keys still waiting for the hand-over waits with them).
    const chain = (this.inputChain ?? this.sizing.takeOver(this.tmuxSessionName, this)).then(
      () => {
        if (!this.ended) this.ptyInput.write(bytes);
      },
      (error: unknown) => {
        this.logger?.warn({ err: error, session: this.sessionName }, 'could not hand over the window size');
        if (!this.ended) this.ptyInput.write(bytes);
      },
    );
    this.inputChain = chain;
    void chain.then(() => {
      if (this.inputChain === chain) this.inputChain = undefined;
    });
  }

  /** This client's tty as tmux names it; the pty's child is the tmux client, so its pid finds it. */
  async clientTty(): Promise<string | undefined> {
    if (this.tty) return this.tty;
    const { stdout } = await this.tmux.run(['list-clients', '-F', '#{client_pid} #{client_tty}']);
    const line = stdout.split('\n').find((l) => l.startsWith(`${this.pty.pid} `));
    this.tty = line?.slice(line.indexOf(' ') + 1);
    return this.tty;
  }

  async redraw(): Promise<void> {
    const tty = await this.clientTty();
    if (tty) await this.tmux.run(['refresh-client', '-t', tty]);
  }

  resize(cols: number, rows: number): void {
    if (this.ended) return;
    this.pty.resize(cols, rows);
  }

  setConnected(connected: boolean): void {
    if (this.ended || this.laned || this.connected === connected) return;
    this.connected = connected;
    this.clearWindowTimer();
    if (!connected) {
      this.windowTimer = setTimeout(() => {
        this.logger?.info({ session: this.sessionName, attachment: this.id }, 'replay window passed; detaching');
        this.detach();
      }, this.limits.replayWindowMs);
    }
    this.updateFlow();
  }

  detach(): void {
    if (this.detachRequested || this.ended) return;
    this.detachRequested = true;
    this.clearWindowTimer();
    // SIGHUP makes the tmux client detach cleanly; the session itself is untouched.
    this.pty.kill('SIGHUP');
    const escalate = setTimeout(() => {
      if (!this.ended) this.pty.kill('SIGKILL');
    }, KILL_GRACE_MS);
    escalate.unref();
    void this.closed.then(() => clearTimeout(escalate));
  }

  async prepareLane(): Promise<boolean> {
    while (this.inputChain) await this.inputChain;
    await this.ptyInput.flushed();
    return !this.ended && this.sizing.isDriver(this.tmuxSessionName, this);
  }

  driveLost(): void {
    this.driveLostEmitter.fire();
  }

  leavePty(): number | undefined {
    if (this.ended || this.laned) return undefined;
    const { fd, _socket: reader } = this.pty as unknown as PtyReader;
    const handle = reader?._handle;
    if (typeof fd !== 'number' || !reader || reader.destroyed !== false || !handle) return undefined;
    this.laned = true;
    clearTimeout(this.readTimer);
    this.readThrottled = false;
    this.clearWindowTimer();
    // pause() alone leaves libuv reading into the stream's buffer until it is full, bytes the
    // native relay would never see: stop the handle itself (what net.Socket's own pause does when
    // it reads into a buffer of its own), then hand on what was read before that.
    reader.pause();
    if (handle.reading) {
      handle.reading = false;
      handle.readStop();
    }
    // In paused mode read() emits 'data' for what it returns: node-pty's onData, handleOutput.
    while (reader.read() !== null);
    this.buffer.release(this.buffer.producedOffset);
    return fd;
  }

  private handleOutput(chunk: Buffer): void {
    keyTrace?.('pty.read', chunk.length);
    const offset = this.buffer.append(chunk);
    this.outputEmitter.fire({ chunk, offset });
    this.updateFlow();
    this.throttleReads();
  }

  /**
   * Under a flood tmux sends its client thousands of small screen updates a second (~20 bytes
   * each for a `cat` of a big file). Reading, framing, encrypting and acking each one costs the
   * agent and the app CPU that tmux itself needs (test/bench/terminal measured 0.7x of a direct
   * attach that way). So output that does not follow a keystroke pauses reading for READ_BATCH_MS:
   * the pty gathers the next updates and one read takes them all. Echoes are never delayed.
   * The interactive spell is INTERACTIVE_MS from the first output read after a keystroke (its
   * echo, read after it has gone on): the clock is not read on the keystroke's own way.
   */
  private throttleReads(): void {
    if (this.readThrottled || this.ended || this.laned) return;
    if (this.inputSinceOutput) {
      this.inputSinceOutput = false;
      this.lastInputAt = performance.now();
      return;
    }
    if (performance.now() - this.lastInputAt < INTERACTIVE_MS) return;
    this.readThrottled = true;
    this.pty.pause();
    this.readTimer = setTimeout(() => {
      this.readThrottled = false;
      this.readTimer = undefined;
      if (!this.paused && !this.ended) this.pty.resume();
    }, READ_BATCH_MS);
  }

  /**
   * Stop reading the tmux client's pty while too much is un-acked. tmux then stops writing to
   * this client and later redraws it (its own slow-client handling), so a flood costs neither
   * memory here nor minutes of replay later, and other clients are not held back.
   */
  private updateFlow(): void {
    if (this.ended || this.laned) return;
    const limit = this.connected ? this.limits.liveWindowBytes : this.limits.replayLimitBytes;
    const unacked = this.buffer.heldBytes;
    if (!this.paused && unacked > limit) {
      this.paused = true;
      this.pty.pause();
    } else if (this.paused && unacked <= limit / 2) {
      this.paused = false;
      if (!this.readThrottled) this.pty.resume();
    }
  }

  private clearWindowTimer(): void {
    if (this.windowTimer) clearTimeout(this.windowTimer);
    this.windowTimer = undefined;
  }
}
