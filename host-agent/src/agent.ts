import {
  DisposableStore,
  toHangarError,
  type CloseReason,
  type Disposable,
  type HostInfo,
  type PublishHostEvent,
} from '@hangar/shared';
import { writeFileSync } from 'node:fs';
import { arch, hostname, platform, release } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Metering } from './billing/index.js';
import { loadOrCreateAgentKey } from './identity/keys.js';
import { loadNativeLanes } from '@hangar/lane';
import { LinkServer } from './link/index.js';
import { LaneAcceptor } from './link/lanes.js';
import { createLaneProcedures } from './peer/lane-procedures.js';
import { artifactLanes } from './peer/artifact-lanes.js';
import { logLanes } from './peer/log-lanes.js';
import { terminalLanes } from './peer/terminal-lanes.js';
import { WebRtcAnswerer } from './link/webrtc-answerer.js';
import { ClientPeer } from './peer/client-peer.js';
import { JobService, ShellExecutor, type JobServiceOptions } from './jobs/index.js';
import { SandboxExecutor } from './jobs/executors/sandbox.js';
import { TartExecutor } from './jobs/executors/tart.js';
import { createJobProcedures } from './peer/job-procedures.js';
import { createPreviewProcedures } from './peer/preview-procedures.js';
import { PreviewService } from './previews/index.js';
import { createTaskProcedures } from './peer/task-procedures.js';
import { createBackupProcedures } from './peer/backup-procedures.js';
import { BackupService } from './backups/index.js';
import { DEFAULT_MAX_TASKS, TaskService } from './tasks/index.js';
import { hostStatsProvider } from './peer/host-stats.js';
import { RelayLink, SpliceDialer, type SignalHandler } from './relay/index.js';
import { createProcedures } from './peer/procedures.js';
import { TerminalBindings } from './peer/terminal-bindings.js';
import { SessionManager } from './sessions/index.js';
import { secureDataDir } from './store/data-dir.js';
import { findPairedDevice, UNPAIRED_FILE } from './store/pairing.js';
import { watchFile } from './file-watch.js';
import { AgentStore } from './store/db.js';
import { UpdateCheck, type UpdateCheckOptions } from './update/update-check.js';
import { AGENT_VERSION } from './version.js';

export interface AgentOptions {
  dataDir: string;
  listen: { host: string; port: number };
  maxSessions: number;
  /** How long a client whose link dropped may come back for the exact bytes it missed. */
  replayWindowMs?: number;
  /** A session's output.log is rotated past this size. */
  sessionLogBytes?: number;
  logger: Logger;
  /** Job queue settings (concurrency, grace periods, limits); defaults in jobs/job-service.ts. */
  jobs?: Partial<Pick<JobServiceOptions, 'maxJobs' | 'killGraceMs' | 'retryBackoff' | 'workspaceLimit' | 'retention'>>;
  /**
   * The Tart base image for macOS VM jobs (e.g. a local clone of ghcr.io/cirruslabs/macos-sequoia-xcode).
   * Without it the tart executor is not offered: its warm pool would boot VMs at every start.
   */
  tartImage?: string;
  /** The bubblewrap binary for sandbox jobs (default: bwrap on PATH). */
  bwrapPath?: string;
  /** Signals from devices through the relay (default: WebRTC offers answered, links handed to the link server). */
  signals?: SignalHandler;
  /** Where per-job cgroups go when a service manager delegated a subtree (service/cgroup-leaf.ts). */
  sandboxCgroupParent?: string;
  /** An installed agent's channel to follow: the app then shows "update available" (update/update-check.ts). */
  updates?: Omit<UpdateCheckOptions, 'logger' | 'onChange'>;
  /** Agent tasks run at once (default DEFAULT_MAX_TASKS), and the labels a task's `label:` needs match. */
  tasks?: { maxTasks?: number; labels?: readonly string[] };
  /** Backups: the restic binary, and a test-only clock for the schedule (BackupServiceOptions). */
  backups?: { resticPath?: string; secondMs?: number };
}

export interface RunningAgent {
  address: { host: string; port: number };
  /** SIGTERM: start no new job, let running ones finish within graceMs, then requeue them. */
  drainJobs(graceMs: number): Promise<void>;
  dispose(): Promise<void>;
}

/**
 * Composition root: builds the services in order and returns something that shuts them down in
 * the reverse order. tmux sessions are not ours to stop: they outlive the agent by design.
 */
export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const owned = new DisposableStore();
  const { logger } = options;
  try {
    secureDataDir(options.dataDir, logger);
    const store = owned.add(AgentStore.open(options.dataDir));
    const nativeLanes = loadNativeLanes();
    const sessions = owned.add(
      await SessionManager.start({
        dataDir: options.dataDir,
        maxSessions: options.maxSessions,
        ...(options.replayWindowMs !== undefined ? { replayWindowMs: options.replayWindowMs } : {}),
        ...(options.sessionLogBytes !== undefined ? { outputLogMaxBytes: options.sessionLogBytes } : {}),
        logger: logger.child({ component: 'sessions' }),
        ...('unavailable' in nativeLanes ? {} : { preferLatency: (pid: number) => nativeLanes.preferLatency(pid) }),
      }),
    );
    const bindings = owned.add(new TerminalBindings());
    const info: HostInfo = {
      hostname: hostname(),
      os: `${platform()} ${release()}`,
      arch: arch(),
      agent_version: AGENT_VERSION,
      tmux_version: sessions.tmuxVersion(),
      session_limit: options.maxSessions,
    };
    // Filled once the link server listens; until then no link can ask for host info.
    let relayLink: RelayLink | undefined;
    let updateCheck: UpdateCheck | undefined;
    // Filled once the task service runs (after the sessions); until then no link can ask.
    let tasksOffer: () => HostInfo['tasks'] = () => undefined;
    const hostInfo = (): HostInfo => ({
      ...info,
      relay: relayLink?.info() ?? null,
      update: updateCheck?.current ?? null,
      tasks: tasksOffer(),
    });
    const peers = new Set<ClientPeer>();
    /** Each open link's device key: a revocation from the relay closes that device's links now. */
    const peerDevices = new Map<ClientPeer, string>();
    const publish: PublishHostEvent = (event, data) => peers.forEach((peer) => peer.publish(event, data));
    owned.add(
      sessions.onChanged((list) => publish('sessions.changed', { sessions: list, tmux: sessions.tmuxState() })),
    );
    owned.add(sessions.onBell((name) => publish('session.bell', { name })));
    const agentKey = await loadOrCreateAgentKey(options.dataDir);
    // Disposed after the jobs (added before them): a drained attempt's last minutes are recorded.
    const metering = owned.add(
      new Metering({ store, signer: agentKey.signer, logger: logger.child({ component: 'billing' }) }),
    );
    // Disposed after the link server and peers (added before them): a drain can still be followed.
    const jobs = owned.add(
      await JobService.start({
        ...options.jobs,
        metering,
        dataDir: options.dataDir,
        db: store.db,
        // Tart is not wired here yet: it needs a base image from the agent's config, and its warm pool boots VMs.
        executors: [
          ...(options.tartImage
            ? [
                new TartExecutor({
                  dataDir: options.dataDir,
                  defaultImage: options.tartImage,
                  logger: logger.child({ component: 'tart' }),
                }),
              ]
            : []),
          new SandboxExecutor({
            dataDir: options.dataDir,
            ...(options.bwrapPath ? { bwrapPath: options.bwrapPath } : {}),
            ...(options.sandboxCgroupParent ? { cgroupParent: options.sandboxCgroupParent } : {}),
            logger: logger.child({ component: 'sandbox' }),
          }),
          new ShellExecutor(),
        ],
        publish,
        logger: logger.child({ component: 'jobs' }),
      }),
    );
    // The link listener's port is known once it listens; until then nothing can ask.
    let linkPort = options.listen.port;
    const previews = owned.add(
      new PreviewService({
        db: store.db,
        ownPorts: () => [linkPort],
        publish,
        logger: logger.child({ component: 'previews' }),
      }),
    );
    const tasks = owned.add(
      await TaskService.start({
        db: store.db,
        dataDir: options.dataDir,
        sessions,
        publish,
        maxTasks: options.tasks?.maxTasks ?? DEFAULT_MAX_TASKS,
        labels: options.tasks?.labels ?? [],
        // An installed agent follows an update channel; one run by a person does not.
        runner: options.updates ? 'service' : 'user',
        logger: logger.child({ component: 'tasks' }),
      }),
    );
    tasksOffer = () => tasks.capabilities();
    const backups = owned.add(
      new BackupService({
        db: store.db,
        dataDir: options.dataDir,
        publish,
        logger: logger.child({ component: 'backups' }),
        ...options.backups,
      }),
    );
    const lanes = owned.add(new LaneAcceptor(logger.child({ component: 'lanes' }), nativeLanes));
    if ('unavailable' in nativeLanes) {
      logger.info(
        { why: nativeLanes.unavailable },
        'no lanes: previews, terminals, artifacts and logs use the link streams',
      );
    } else {
      lanes.handle('preview', (hello, link) => previews.takeLane(hello.port, link.mux, nativeLanes));
      lanes.handle('terminal', terminalLanes(bindings, nativeLanes));
      lanes.handle('artifact', artifactLanes(jobs, nativeLanes));
      lanes.handle('log', logLanes(jobs, nativeLanes));
    }
    const procedures = createProcedures(
      {
        sessions,
        bindings,
        hostInfo,
        publish,
        hostStats: hostStatsProvider({
          dataDir: options.dataDir,
          sessionCount: async () => (await sessions.list()).length,
          tmuxState: () => sessions.tmuxState(),
          runningJobs: () => jobs.list(1000, ['preparing', 'running']).length,
        }),
      },
      createJobProcedures(jobs),
      createPreviewProcedures(previews),
      createTaskProcedures(tasks),
      createBackupProcedures(backups),
      createLaneProcedures(lanes),
    );
    owned.add({ dispose: () => peers.forEach((peer) => peer.dispose()) });
    const server = owned.add(
      await LinkServer.listen({
        host: options.listen.host,
        port: options.listen.port,
        dataDir: options.dataDir,
        store,
        hostInfo,
        logger: logger.child({ component: 'link' }),
        lanes,
        onLink: (link) => {
          const peer = new ClientPeer(link, procedures, logger.child({ component: 'peer', device: link.device.name }));
          peers.add(peer);
          peerDevices.set(peer, link.device.public_key);
          // A core from before preview.watch never says it: watched for while linked, as it expects.
          previews.linked(peer.mux);
          peer.mux.onClose(() => {
            peers.delete(peer);
            peerDevices.delete(peer);
          });
          if (link.via !== 'pinned') relayLink?.devicePinned();
        },
      }),
    );
    linkPort = server.address().port;
    owned.add(watchUnpairing(options.dataDir, store, peerDevices, logger));
    const spliceDialer = new SpliceDialer();
    relayLink = owned.add(
      RelayLink.start({
        store,
        signer: agentKey.signer,
        listen: () => server.address(),
        logger: logger.child({ component: 'relay' }),
        signals:
          options.signals ??
          new WebRtcAnswerer({
            accept: (link) => server.accept(link),
            iceServers: () => relayLink?.iceServers() ?? [],
            logger: logger.child({ component: 'webrtc' }),
          }),
        billing: metering,
        onSplice: (request) => {
          const log = logger.child({ component: 'relay' });
          log.info({ device_id: request.device_id }, 'a device asked for a relayed link: dialing the relay');
          spliceDialer.dial(request.relay_url, request.splice_id).then(
            (socket) => server.acceptSpliced(socket),
            (error: unknown) =>
              log.warn({ err: toHangarError(error), device_id: request.device_id }, 'could not open a relayed link'),
          );
        },
        closeLinksOf: (deviceKey) =>
          closeDeviceLinks(peerDevices, (key) => key === deviceKey, logger, 'a revoked device', {
            code: 'E_AUTH_DEVICE_REVOKED',
            message: 'this device was revoked by a trusted device of the account; this host no longer accepts it',
          }),
      }),
    );
    if (options.updates) {
      const check = new UpdateCheck({
        ...options.updates,
        logger: logger.child({ component: 'update' }),
        onChange: () => publish('host.info', hostInfo()),
      });
      updateCheck = check;
      owned.add({ dispose: () => check.dispose() });
      check.start();
    }
    logger.info({ address: server.address(), dataDir: options.dataDir }, 'agent started');
    return {
      address: server.address(),
      drainJobs: (graceMs) => jobs.drain(graceMs),
      dispose: () => owned.dispose(),
    };
  } catch (error) {
    await owned.dispose();
    throw error;
  }
}

/**
 * `hangar-agent unpair` (another process) forgets a device in the database and then writes
 * UNPAIRED_FILE: each open link of a device no longer pinned ends then, not at its next link only.
 * A watch (inotify, kqueue) costs nothing while nobody unpairs.
 */
function watchUnpairing(
  dataDir: string,
  store: AgentStore,
  peerDevices: Map<ClientPeer, string>,
  logger: Logger,
): Disposable {
  const file = join(dataDir, UNPAIRED_FILE);
  writeFileSync(file, '', { flag: 'a', mode: 0o600 });
  const watcher = watchFile(
    file,
    () =>
      closeDeviceLinks(peerDevices, (key) => findPairedDevice(store, key) === undefined, logger, 'an unpaired device', {
        code: 'E_AUTH_UNKNOWN_DEVICE',
        message: 'this device was unpaired on the host (hangar-agent unpair); pair it again with a code',
      }),
    (error) =>
      logger.warn(
        { err: toHangarError(error) },
        'cannot watch for unpaired devices; their links end at their next connect',
      ),
  );
  return { dispose: () => watcher?.close() };
}

/** Ends every open link of a device `ends` picks (by its key), saying why: revoked, unpaired. */
function closeDeviceLinks(
  peerDevices: Map<ClientPeer, string>,
  ends: (deviceKey: string) => boolean,
  logger: Logger,
  which: string,
  reason: CloseReason,
): void {
  for (const [peer, key] of peerDevices) {
    if (!ends(key)) continue;
    logger.info({ device: key }, `closing the links of ${which}`);
    peer.mux.close(reason);
  }
}
