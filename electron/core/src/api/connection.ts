import {
  CORE_PROCEDURES,
  ControlServer,
  DisposableStore,
  Mux,
  type Disposable,
  type FrameTransport,
  type MuxOptions,
} from '@hangar/shared';
import type { Logger } from 'pino';
import type { HangarCore } from '../core.js';
import type { Platform } from '../platform.js';
import { coreHandlers, type ApiContext } from './handlers.js';
import type { HostMonitor } from './host-monitor.js';
import { UiTerminals } from './terminals.js';

export interface ApiConnectionDeps {
  core: HangarCore;
  monitor: HostMonitor;
  platform: Platform;
  logger: Logger;
  mux?: Omit<MuxOptions, 'role'>;
}

/**
 * One UI (a window, a browser tab) connected to the core: a Mux over its transport (the UI is
 * the 'client' side, opening odd stream ids), the core API on the control stream, the events,
 * and the terminals this UI opened. When the transport goes, everything it owned goes with it.
 */
export class ApiConnection implements Disposable {
  readonly mux: Mux;
  private readonly store = new DisposableStore();
  private readonly server: ControlServer<typeof CORE_PROCEDURES, ApiContext>;

  constructor(transport: FrameTransport, deps: ApiConnectionDeps) {
    const { core, monitor, platform, logger } = deps;
    this.mux = new Mux(transport, { ...deps.mux, role: 'agent' });
    const terminals = this.store.add(
      new UiTerminals(core, this.mux, (terminal_id, status) =>
        this.server.publish('terminal.status', { terminal_id, status }),
      ),
    );
    this.server = this.store.add(
      new ControlServer(
        this.mux,
        CORE_PROCEDURES,
        coreHandlers,
        { core, monitor, platform, mux: this.mux, terminals },
        {
          onInternalError: (error, method) => logger.error({ err: error, method }, 'core API call failed'),
          onProtocolError: (error) => logger.warn({ err: error }, 'closing UI connection: bad control message'),
          // The pairing code and environment values in params are redacted by the logger's config.
          onRequest: (method, params) => logger.debug({ method, params }, 'core API request'),
        },
      ),
    );
    this.store.add(
      monitor.onChanged(() => {
        monitor
          .views()
          .then((hosts) => this.server.publish('hosts.changed', { hosts }))
          .catch((error: unknown) => logger.error({ err: error }, 'could not list hosts for hosts.changed'));
      }),
    );
    this.store.add(monitor.onJobUpdated((update) => this.server.publish('job.updated', update)));
    this.store.add(monitor.onSessionsChanged((update) => this.server.publish('sessions.changed', update)));
    this.store.add(monitor.onSessionBell((bell) => this.server.publish('session.bell', bell)));
    this.store.add(core.previews.onChanged((update) => this.server.publish('previews.changed', update)));
    this.mux.onClose(() => void this.dispose());
  }

  async dispose(): Promise<void> {
    await this.store.dispose();
    this.mux.close({ code: 'closed', message: 'the core closed this UI connection' });
  }
}
