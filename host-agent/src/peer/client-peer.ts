import {
  ControlServer,
  HOST_EVENTS,
  HOST_PROCEDURES,
  Mux,
  type Disposable,
  type PublishHostEvent,
} from '@hangar/shared';
import type { Logger } from 'pino';
import type { AuthenticatedLink } from '../link/index.js';
import type { CallContext, ProcedureTable } from './procedures.js';

/**
 * One authenticated client link: the shared procedure table served on the link's control stream
 * (shared's ControlServer validates every request before a handler sees it), plus events.
 */
export class ClientPeer implements Disposable {
  readonly mux: Mux;
  private readonly server: ControlServer<typeof HOST_PROCEDURES, CallContext, typeof HOST_EVENTS>;

  constructor(link: AuthenticatedLink, procedures: ProcedureTable, logger: Logger) {
    this.mux = new Mux(link.transport, { role: 'agent' });
    this.server = new ControlServer(
      this.mux,
      HOST_PROCEDURES,
      HOST_EVENTS,
      procedures,
      { mux: this.mux, device: link.device.public_key },
      {
        onInternalError: (error, method) => logger.error({ err: error, method }, 'request or event failed'),
        onProtocolError: (error) => logger.warn({ err: error }, 'closing link: unparseable control message'),
        // Secrets in params (environment values, job secrets) are redacted by the logger's config.
        onRequest: (method, params) => logger.debug({ method, params }, 'request'),
      },
    );
  }

  /** An event of HOST_EVENTS for this client; dropped if the link is gone (clients re-read state on reconnect). */
  readonly publish: PublishHostEvent = (event, data) => this.server.publish(event, data);

  dispose(): void {
    this.server.dispose();
    this.mux.dispose();
  }
}
