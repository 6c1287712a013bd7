export { HangarCore, type CoreOptions } from './core.js';
export { createCoreLogger } from './logging.js';
export { HostConnection } from './connection/host-connection.js';
export { TerminalClient, type TakeOver, type LaneStarter, type TerminalLane } from './terminal/terminal-client.js';
export { DirectTerminal } from './api/direct-terminal.js';
export { lanesHere, openLane, type OpenedLane } from './link/lanes.js';
export { hangarHome } from './state/paths.js';
export {
  JobsApi,
  isFinal,
  DEFAULT_MAX_WORKSPACE_BYTES,
  type HostJobs,
  type FoundJob,
  type PackedWorkspace,
  type DownloadProgress,
  type FollowOptions,
  type LogChunk,
  type LogEnd,
  type LogSink,
  type UploadProgress,
  type UploadResult,
  type JobLink,
} from './jobs/index.js';
export { CoreApiServer, ApiConnection, type CoreApiServerOptions, type Door } from './api/index.js';
export { openCoreApi, type InProcessCoreApi, type OpenCoreApiOptions } from './api/in-process-door.js';
export { LocalDoor, type LocalDoorOptions } from './door/local-door.js';
export { PreviewsApi, PreviewForwarder, type HostPreviews, type PreviewLink } from './previews/index.js';
export { WebServer, type WebServerOptions } from './web/server.js';
export { findStaticFile, MISSING_BUILD_PAGE, type StaticFile } from './web/static-files.js';
export {
  nodePlatform,
  defaultDownloadsDir,
  isWebUrl,
  type Platform,
  type DesktopNotification,
  type NodePlatformOptions,
} from './platform.js';
export {
  Supervisor,
  RestartBudget,
  DEFAULT_RESTART_POLICY,
  systemClock,
  EmbeddedAgent,
  EMBEDDED_HOST,
  AGENT_HEARTBEAT,
  agentBinPath,
  type Clock,
  type RestartPolicy,
  type Heartbeat,
  type SupervisorOptions,
  type SupervisedStart,
  type SupervisedRestart,
  type EmbeddedAgentOptions,
} from './supervision/index.js';
export { webRtcHoldsProcess } from './link/webrtc-connect.js';
