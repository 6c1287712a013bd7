import {
  HangarError,
  type HostInfo,
  type HostStats,
  type HostMethod,
  type Mux,
  type HOST_PROCEDURES,
  type ProcedureHandlers,
  type PublishHostEvent,
} from '@hangar/shared';
import type { SessionManager } from '../sessions/index.js';
import type { TerminalBindings } from './terminal-bindings.js';

export interface AgentServices {
  sessions: SessionManager;
  bindings: TerminalBindings;
  hostInfo(): HostInfo;
  /** Sends an event of HOST_EVENTS to every connected client (e.g. `job.updated`). */
  publish: PublishHostEvent;
  hostStats(): Promise<HostStats>;
}

/** Who is asking: resolved by the handshake, passed to every handler. */
export interface CallContext {
  mux: Mux;
  device: string;
}

/** One handler per HOST_PROCEDURES entry, typed by shared's ControlServer (which serves them). */
export type ProcedureTable = ProcedureHandlers<typeof HOST_PROCEDURES, CallContext>;
export type JobMethod = Extract<HostMethod, `job.${string}` | `workspace.${string}` | `artifact.${string}`>;
export type JobProcedureTable = Pick<ProcedureTable, JobMethod>;
export type PreviewMethod = Extract<HostMethod, `preview.${string}`>;
export type PreviewProcedureTable = Pick<ProcedureTable, PreviewMethod>;
export type TaskMethod = Extract<HostMethod, `task.${string}`>;
export type TaskProcedureTable = Pick<ProcedureTable, TaskMethod>;
export type BackupMethod = Extract<HostMethod, `backup.${string}`>;
export type BackupProcedureTable = Pick<ProcedureTable, BackupMethod>;
export type LaneMethod = Extract<HostMethod, `lane.${string}`>;
export type LaneProcedureTable = Pick<ProcedureTable, LaneMethod>;
export type SessionProcedureTable = Omit<
  ProcedureTable,
  JobMethod | PreviewMethod | TaskMethod | BackupMethod | LaneMethod
>;

/**
 * One handler per call in shared's HOST_PROCEDURES. Params arrive already validated by that
 * table's schema; each handler checks what the caller may touch before acting.
 */
export function createProcedures(
  services: AgentServices,
  jobs: JobProcedureTable,
  previews: PreviewProcedureTable,
  tasks: TaskProcedureTable,
  backups: BackupProcedureTable,
  lanes: LaneProcedureTable,
): ProcedureTable {
  return { ...sessionProcedures(services), ...jobs, ...previews, ...tasks, ...backups, ...lanes };
}

function sessionProcedures(services: AgentServices): SessionProcedureTable {
  const { sessions, bindings } = services;

  const ownAttachment = (id: string, call: CallContext) => {
    const attachment = sessions.getAttachment(id);
    if (!attachment || bindings.owner(id) !== call.device) {
      throw new HangarError('E_NOT_FOUND', `no attachment ${id} for this device; attach again`);
    }
    return attachment;
  };

  return {
    'host.info': async () => ({ result: services.hostInfo() }),

    'host.stats': async () => ({ result: await services.hostStats() }),

    'session.create': async (params) => ({ result: await sessions.create(params) }),

    'session.list': async () => {
      const list = await sessions.list();
      return { result: { sessions: list, tmux: sessions.tmuxState() } };
    },

    'session.kill': async (params) => {
      await sessions.kill(params.name);
      return { result: {} };
    },

    'session.attach': async (params, call) => {
      if (call.mux.getStream(params.stream_id)) {
        throw new HangarError('E_BAD_REQUEST', `stream ${params.stream_id} is already in use on this link`);
      }
      const size = { cols: params.cols, rows: params.rows };
      if (params.resume) {
        const previous = sessions.getAttachment(params.resume.attachment_id);
        const mine = previous && previous.sessionName === params.name && bindings.owner(previous.id) === call.device;
        const held = mine ? previous.readFrom(params.resume.offset) : undefined;
        if (mine && held !== undefined) {
          const from = params.resume.offset;
          return {
            result: { attachment_id: previous.id, offset: from, resumed: true },
            after: () => {
              const stream = call.mux.openStream({ id: params.stream_id, sendOffset: from });
              bindings.bind(previous, stream, call.mux, call.device, from);
              previous.resize(size.cols, size.rows);
            },
          };
        }
        // Past the replay window (or the agent restarted): the client attaches afresh.
        if (mine) previous.detach();
        return { result: { attachment_id: params.resume.attachment_id, offset: params.resume.offset, resumed: false } };
      }
      const attachment = await sessions.attach(params.name, size);
      const from = attachment.ackedOffset;
      return {
        result: { attachment_id: attachment.id, offset: from, resumed: false },
        after: () => {
          const stream = call.mux.openStream({ id: params.stream_id, sendOffset: from });
          bindings.bind(attachment, stream, call.mux, call.device, from);
        },
      };
    },

    'session.detach': async (params, call) => {
      const attachment = ownAttachment(params.attachment_id, call);
      bindings.unbind(attachment.id, { code: 'detached', message: 'detached' });
      attachment.detach();
      return { result: {} };
    },

    'terminal.resize': async (params, call) => {
      ownAttachment(params.attachment_id, call).resize(params.cols, params.rows);
      return { result: {} };
    },

    'terminal.redraw': async (params, call) => {
      await ownAttachment(params.attachment_id, call).redraw();
      return { result: {} };
    },
  };
}
