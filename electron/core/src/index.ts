export { HangarCore, defaultLogger, type CoreOptions } from './core.js';
export { HostConnection } from './connection/host-connection.js';
export { TerminalClient } from './terminal/terminal-client.js';
export { hangarHome } from './state/paths.js';
export {
  JobsApi,
  isFinal,
  formatBytes,
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
export { openCoreApi, type OpenCoreApiOptions } from './api/in-process-door.js';
export { PreviewsApi, PreviewForwarder, type HostPreviews, type PreviewLink } from './previews/index.js';
export { WebServer, type WebServerOptions } from './web/server.js';
export { nodePlatform, defaultDownloadsDir, isWebUrl, type Platform, type DesktopNotification } from './platform.js';
