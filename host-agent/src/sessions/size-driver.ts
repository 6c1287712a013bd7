import type { Tmux } from './tmux.js';

/** What the size driver needs of an attachment: its tmux client, found by the pty's pid. */
export interface SizedClient {
  readonly id: string;
  readonly ended: boolean;
  clientTty(): Promise<string | undefined>;
  /** Another client took the size over (it typed). */
  driveLost?(): void;
}

/**
 * "The client that last typed drives the size; the others follow without resizing the session."
 * tmux's `window-size latest` alone is not enough: attaching or resizing also makes a client the
 * latest (seen with tmux 3.3a), so a second viewer would shrink the first one's window. So every
 * client but the driver carries tmux's `ignore-size` flag, and typing hands the flag over.
 */
export class SizeDriver {
  private readonly drivers = new Map<string, SizedClient>();

  constructor(private readonly tmux: Tmux) {}

  /** A new client drives only if nobody does yet; otherwise it attaches with ignore-size. */
  claimOnAttach(session: string, client: SizedClient): boolean {
    const current = this.drivers.get(session);
    if (current && !current.ended) return false;
    this.drivers.set(session, client);
    return true;
  }

  isDriver(session: string, client: SizedClient): boolean {
    return this.drivers.get(session) === client;
  }

  /** Makes `client` the driver: it loses ignore-size, the previous driver gains it. */
  async takeOver(session: string, client: SizedClient): Promise<void> {
    const previous = this.drivers.get(session);
    if (previous === client) return;
    this.drivers.set(session, client);
    if (previous && !previous.ended) previous.driveLost?.();
    const tty = await client.clientTty();
    if (tty) await this.tmux.run(['refresh-client', '-t', tty, '-f', '!ignore-size']);
    if (previous && !previous.ended) {
      const previousTty = await previous.clientTty();
      if (previousTty) await this.tmux.run(['refresh-client', '-t', previousTty, '-f', 'ignore-size']);
    }
  }

  release(session: string, client: SizedClient): void {
    if (this.drivers.get(session) === client) this.drivers.delete(session);
  }
}
