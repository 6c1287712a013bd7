import {
  HangarError,
  type CORE_PROCEDURES,
  type Disposable,
  type DisposableStore,
  type Mux,
  type ProcedureHandlers,
} from '@hangar/shared';
import type { HangarCore } from '../core.js';
import type { Platform } from '../platform.js';
import { accountHandlers } from './account-handlers.js';
import { backupHandlers } from './backup-handlers.js';
import type { Door, PublishCoreEvent } from './connection.js';
import type { HostMonitor } from './host-monitor.js';
import { jobHandlers } from './job-handlers.js';
import type { UiTerminals } from './terminals.js';

/** What a handler may use: the core, and the calling connection's own resources. */
export interface ApiContext {
  core: HangarCore;
  monitor: HostMonitor;
  platform: Platform;
  mux: Mux;
  terminals: UiTerminals;
  door: Door;
  /** Events for the calling connection only (progress, a log's attempts). */
  publish: PublishCoreEvent;
  /** Released when the calling connection goes (previews it serves only while it lives). */
  held: DisposableStore;
}

export type CoreHandlers = ProcedureHandlers<typeof CORE_PROCEDURES, ApiContext>;

/** The port watch a client connection holds while it watches (previews.watch), by its `held`. */
interface PortWatchSlot extends Disposable {
  watch: Disposable | undefined;
}
const portWatches = new WeakMap<DisposableStore, PortWatchSlot>();

/**
 * One handler per CORE_PROCEDURES entry (shared/src/protocol/core-api.ts); the job calls are in
 * job-handlers.ts. Params arrive parsed by that table; results are checked against it on the way
 * out. No client sees this device's private key: everything it gets is a HostView, a session, a
 * job or bytes on a stream.
 */
export const coreHandlers: CoreHandlers = {
  'hosts.list': async (params, { monitor }) => ({
    result: { hosts: await monitor.views({ fresh: true, probe: params.probe }) },
  }),

  'hosts.add': async (params, { core, monitor }) => {
    const paired = await core.addHost({ name: params.name, address: params.address, code: params.code });
    await monitor.settle(params.name);
    const host = (await monitor.views({ fresh: true })).find((h) => h.name === params.name);
    if (!host) throw new HangarError('E_INTERNAL', `host "${params.name}" was paired but is not listed`);
    // The hangar command's own core keeps no link after pairing: what the agent said then is its info.
    return { result: { host: { ...host, info: host.info ?? paired.info } } };
  },

  'hosts.rename': async (params, { core }) => {
    core.renameHost(params.name, params.new_name);
    return { result: {} };
  },

  'hosts.remove': async (params, { core }) => ({ result: await core.removeHost(params.name) }),

  'sessions.list': async (params, { core }) => ({ result: { hosts: await core.sessionsOn(params.host) } }),

  'sessions.create': async (params, { core }) => ({ result: await core.createSession(params.host, params.session) }),

  'sessions.kill': async (params, { core }) => {
    await core.killSession(params.host, params.name);
    return { result: {} };
  },

  'terminal.open': async (params, { terminals }) => {
    const { terminalId, after } = await terminals.open(params);
    return { result: { terminal_id: terminalId }, after };
  },

  'terminal.resize': async (params, { terminals }) => {
    terminals.resize(params.terminal_id, params.cols, params.rows);
    return { result: {} };
  },

  'terminal.redraw': async (params, { terminals }) => {
    terminals.redraw(params.terminal_id);
    return { result: {} };
  },

  'terminal.attachment': async (params, { terminals }) => ({ result: await terminals.attachment(params.terminal_id) }),

  'terminal.close': async (params, { terminals }) => {
    await terminals.close(params.terminal_id);
    return { result: {} };
  },

  ...jobHandlers,

  'tasks.add': async (params, { core }) => ({ result: { task: await core.tasks.add(params.spec, params.host) } }),

  'tasks.list': async (_params, { core }) => ({ result: await core.tasks.list() }),

  'tasks.get': async (params, { core }) => ({ result: { task: await core.tasks.get(params.id, params.host) } }),

  'tasks.cancel': async (params, { core }) => ({ result: { task: await core.tasks.cancel(params.id, params.host) } }),

  ...backupHandlers,

  ...accountHandlers,

  'previews.list': async (params, { core }) => ({ result: { hosts: await core.previews.list(params.host) } }),

  'previews.add': async (params, { core }) => ({
    result: await core.previews.add(params.host, params.port, params.label),
  }),

  'previews.remove': async (params, { core }) => {
    await core.previews.remove(params.host, params.port);
    return { result: {} };
  },

  'previews.open': async (params, { core, held }) => {
    if (params.remember) {
      // Opened from a UI: remembered, so the next npm start serves it again at the same address.
      return { result: await core.previews.open(params.host, params.port, params.local_port, { remember: true }) };
    }
    const { release, ...opened } = await core.previews.hold(params.host, params.port, params.local_port);
    held.add(release);
    return { result: opened };
  },

  'previews.close': async (params, { core }) => {
    await core.previews.close(params.host, params.port);
    return { result: {} };
  },

  'previews.watch': async (params, { core, held }) => {
    // One watch per client connection, however often it says so; it ends with the connection.
    let slot = portWatches.get(held);
    if (!slot) {
      const made: PortWatchSlot = {
        watch: undefined,
        dispose: () => {
          void made.watch?.dispose();
          made.watch = undefined;
        },
      };
      portWatches.set(held, (slot = held.add(made)));
    }
    if (params.watch) slot.watch ??= core.previews.watch();
    else slot.dispose();
    return { result: {} };
  },
};
