import type { Disposable, FrameTransport, MuxOptions } from '@hangar/shared';
import type { Logger } from 'pino';
import type { HangarCore } from '../core.js';
import type { Platform } from '../platform.js';
import { ApiConnection, type Door } from './connection.js';
import { HostMonitor } from './host-monitor.js';

export interface CoreApiServerOptions {
  /**
   * A UI core (hangar up, hangar ui, the window; default): keeps a link to every paired host,
   * tells clients what changes, and serves the previews UIs had open again. Not live: the hangar
   * command's own short-lived core, which links only to the hosts a call names.
   */
  live?: boolean;
  logger?: Logger;
  mux?: Omit<MuxOptions, 'role'>;
}

/**
 * The core API's one entry: serve(transport) for each client that connects, whatever carries its
 * frames (a WebSocket in web mode, a MessagePort in Electron, memory for the hangar command).
 * Every door gets the same procedures from CORE_PROCEDURES; none has its own.
 */
export class CoreApiServer implements Disposable {
  private readonly monitor: HostMonitor;
  private readonly connections = new Set<ApiConnection>();
  private readonly logger: Logger;

  constructor(
    private readonly core: HangarCore,
    private readonly platform: Platform,
    private readonly options: CoreApiServerOptions = {},
  ) {
    const live = options.live ?? true;
    this.logger = options.logger ?? core.logger.child({ component: 'core-api' });
    this.monitor = new HostMonitor(core, platform, this.logger, live);
    // A UI door is up: what UIs had open is served again, and the account's relay socket opens
    // while signed in (the CLI's own core does neither).
    if (live) {
      void core.previews.restore();
      core.goLive();
      core.tasks.keepDispatching();
    }
  }

  /** `door`: who is on the other end; only the hangar command may name paths to write on this computer. */
  serve(transport: FrameTransport, door: Door = 'ui'): ApiConnection {
    const connection = new ApiConnection(transport, {
      core: this.core,
      monitor: this.monitor,
      platform: this.platform,
      logger: this.logger,
      door,
      ...(this.options.mux ? { mux: this.options.mux } : {}),
    });
    this.connections.add(connection);
    connection.mux.onClose(() => this.connections.delete(connection));
    return connection;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.connections].map((c) => c.dispose()));
    this.connections.clear();
    await this.monitor.dispose();
  }
}

export { ApiConnection, type Door } from './connection.js';
