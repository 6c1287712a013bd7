import {
  CORE_EVENTS,
  CORE_PROCEDURES,
  ControlServer,
  DisposableStore,
  Mux,
  type CoreEvent,
  type Disposable,
  type EventInput,
  type FrameTransport,
  type MuxOptions,
} from '@hangar/shared';
import type { Logger } from 'pino';
import type { HangarCore } from '../core.js';
import type { Platform } from '../platform.js';
import { coreHandlers, type ApiContext } from './handlers.js';
import type { HostMonitor } from './host-monitor.js';
import { UiTerminals } from './terminals.js';

/**
 * Who is on the other end of a connection. 'ui': a window or a browser tab (sandboxed pages: the
 * core picks where files go). 'cli': the hangar command of this computer's user (in-process, or
 * later over an owner-only local socket), which may name local paths as the user could anyway.
 */
export type Door = 'ui' | 'cli';

export interface ApiConnectionDeps {
  core: HangarCore;
  monitor: HostMonitor;
  platform: Platform;
  logger: Logger;
  door: Door;
  mux?: Omit<MuxOptions, 'role'>;
}

/** Sends one of CORE_EVENTS to this connection only, checked against its schema. */
export type PublishCoreEvent = <K extends CoreEvent>(event: K, data: EventInput<typeof CORE_EVENTS, K>) => void;

/**
 * One client (a window, a browser tab, a hangar command) connected to the core: a Mux over its
 * transport (the client opens odd stream ids), the core API on the control stream, the events,
 * and what this client opened (terminals, previews held open). When the transport goes,
 * everything it owned goes with it.
 */
export class ApiConnection implements Disposable {
  readonly mux: Mux;
  private readonly store = new DisposableStore();
  private readonly server: ControlServer<typeof CORE_PROCEDURES, ApiContext, typeof CORE_EVENTS>;

  constructor(transport: FrameTransport, deps: ApiConnectionDeps) {
    const { core, monitor, platform, logger } = deps;
    this.mux = new Mux(transport, { ...deps.mux, role: 'agent' });
    const publish: PublishCoreEvent = (event, data) => this.server.publish(event, data);
    const terminals = this.store.add(
      new UiTerminals(core, this.mux, (terminal_id, status) => publish('terminal.status', { terminal_id, status })),
    );
    // What this client holds open only while it is connected (hangar preview open).
    const held = this.store.add(new DisposableStore());
    this.server = this.store.add(
      new ControlServer(
        this.mux,
        CORE_PROCEDURES,
        CORE_EVENTS,
        coreHandlers,
        { core, monitor, platform, mux: this.mux, terminals, door: deps.door, publish, held },
        {
          onInternalError: (error, method) => logger.error({ err: error, method }, 'core API call or event failed'),
          onProtocolError: (error) => logger.warn({ err: error }, 'closing client connection: bad control message'),
          // The pairing code, environment values and job secrets in params are redacted by the logger's config.
          onRequest: (method, params) => logger.debug({ method, params }, 'core API request'),
        },
      ),
    );
    this.store.add(
      monitor.onChanged(() => {
        monitor
          .views()
          .then((hosts) => publish('hosts.changed', { hosts }))
          .catch((error: unknown) => logger.error({ err: error }, 'could not list hosts for hosts.changed'));
      }),
    );
    this.store.add(monitor.onJobUpdated((update) => publish('job.updated', update)));
    this.store.add(core.tasks.onUpdated((task) => publish('task.updated', { task })));
    this.store.add(monitor.onSessionsChanged((update) => publish('sessions.changed', update)));
    this.store.add(monitor.onSessionBell((bell) => publish('session.bell', bell)));
    this.store.add(core.previews.onChanged((update) => publish('previews.changed', update)));
    this.store.add(core.account.onChanged(() => publish('account.changed', core.account.status())));
    this.store.add(core.accountHosts.onDevicePending((device) => publish('device.pending', { device })));
    this.mux.onClose(() => void this.dispose());
  }

  async dispose(): Promise<void> {
    await this.store.dispose();
    this.mux.close({ code: 'closed', message: 'the core closed this client connection' });
  }
}
