import {
  CoreApiClient,
  createMemoryTransportPair,
  type FrameTransport,
  type TerminalSink,
  type TerminalTarget,
} from '@hangar/shared';
import { HangarCore, type CoreOptions } from '../core.js';
import { nodePlatform, type Platform } from '../platform.js';
import type { FollowOptions, LogEnd, LogSink } from '../jobs/log-follower.js';
import type { TakeOver } from '../terminal/terminal-client.js';
import { DirectTerminal } from './direct-terminal.js';
import { CoreApiServer } from './index.js';

export interface OpenCoreApiOptions extends CoreOptions {
  platform?: Platform;
}

/**
 * The core API for the hangar command: a CoreApiClient, the same client the window and web mode
 * hold, on the same procedures and schemas. Today the core it talks to is its own, opened in this
 * process and served over an in-memory link (not live: it links only to the hosts a call names);
 * disposing the client disposes that core. Reaching a core that already runs (issue 18: a local
 * socket) only changes where the transport comes from.
 */
export async function openCoreApi(options: OpenCoreApiOptions = {}): Promise<InProcessCoreApi> {
  const core = await HangarCore.open(options);
  const server = new CoreApiServer(core, options.platform ?? nodePlatform(core.logger), { live: false });
  // Delivered on setImmediate, not a timer: a keystroke crosses this link twice (in and echoed).
  const [clientEnd, coreEnd] = createMemoryTransportPair({ schedule: setImmediate });
  server.serve(coreEnd, 'cli');
  return new InProcessCoreApi(clientEnd, server, core);
}

export class InProcessCoreApi extends CoreApiClient {
  constructor(
    transport: FrameTransport,
    private readonly server: CoreApiServer,
    private readonly core: HangarCore,
  ) {
    super(transport);
  }

  /** The core's own terminal, not one through the in-memory link: a keystroke crosses one link, not two. */
  override openTerminal(target: TerminalTarget, sink: TerminalSink, takeOver?: TakeOver): DirectTerminal {
    return new DirectTerminal(this.core, target, sink, takeOver);
  }

  /**
   * A job's log followed by this process's own core (its own link to the host), not through the
   * in-memory link: with `laneOut` its bytes go on a lane straight to that descriptor (the
   * command's stdout) when one can be had (FollowOptions.laneOut).
   */
  followLogDirect(host: string, id: string, options: FollowOptions, sink: LogSink): Promise<LogEnd> {
    return this.core.jobs.followLogs(host, id, options, sink);
  }

  /** Closes the link, then the core behind it: what the connection held (terminals, previews) goes first. */
  override async dispose(): Promise<void> {
    super.dispose();
    await this.server.dispose();
    await this.core.dispose();
  }
}
