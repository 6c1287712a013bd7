import type { Disposable, FrameTransport, MuxOptions } from '@hangar/shared';
import type { Logger } from 'pino';
import type { HangarCore } from '../core.js';
import type { Platform } from '../platform.js';
import { ApiConnection } from './connection.js';
import { HostMonitor } from './host-monitor.js';

/**
 * The core API's one entry: serve(transport) for each UI that connects, whatever carries its
 * frames (a WebSocket in web mode, a MessagePort in Electron). Every door gets the same
 * procedures from CORE_PROCEDURES; none has its own.
 */
export class CoreApiServer implements Disposable {
  private readonly monitor: HostMonitor;
  private readonly connections = new Set<ApiConnection>();

  constructor(
    private readonly core: HangarCore,
    private readonly platform: Platform,
    private readonly logger: Logger = core.logger.child({ component: 'core-api' }),
    private readonly muxOptions?: Omit<MuxOptions, 'role'>,
  ) {
    this.monitor = new HostMonitor(core, platform, this.logger);
    // A UI door is up: what UIs had open is served again (the CLI's own core does not do this).
    void core.previews.restore();
  }

  serve(transport: FrameTransport): ApiConnection {
    const connection = new ApiConnection(transport, {
      core: this.core,
      monitor: this.monitor,
      platform: this.platform,
      logger: this.logger,
      ...(this.muxOptions ? { mux: this.muxOptions } : {}),
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

export { ApiConnection } from './connection.js';
