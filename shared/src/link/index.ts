export type { AckListener, DataPartListener, FrameTransport, TransportFeature } from './transport.js';
export { keyTrace, startKeyTrace, type KeyTrace, type KeyTraceOptions } from './key-trace.js';
export { Mux, type MuxOptions, type OpenStreamOptions } from './mux.js';
export { LINK_BACKLOG_CLOSE_CODE, DEFAULT_CONTROL_BACKLOG, type ControlBacklogLimits } from './control-backlog.js';
export {
  LinkStream,
  DEFAULT_STREAM_WINDOW,
  BULK_STREAM_WINDOW,
  BULK_FRAME_BYTES,
  TERMINAL_OUTPUT_ACK_DELAY_MS,
  TERMINAL_INPUT_ACK_DELAY_MS,
} from './stream.js';
export {
  createMemoryTransportPair,
  type MemoryTransport,
  type MemoryTransportOptions,
  type MemoryTransportPair,
} from './memory-transport.js';
export {
  ControlServer,
  type ControlServerOptions,
  type ProcedureHandlers,
  type ProcedureOutcome,
  type ProcedureSpec,
} from './control-server.js';
export {
  ControlClient,
  type CallOptions,
  type CallParams,
  type CallResult,
  type ControlClientOptions,
} from './control-client.js';
export { ControlCalls, type ControlCallsOptions, type ControlChecks } from './control-calls.js';
export {
  CoreApiClient,
  type CoreApi,
  type CoreApiClientOptions,
  type CoreCallParams,
  type CoreCallResult,
  type CoreEventData,
} from './core-api-client.js';
export { MuxCoreApi, type CoreControl } from './core-api-base.js';
export { followCoreJobLog, type FollowedJobLog, type JobLogApi, type JobLogSink } from './core-job-log.js';
export {
  CoreTerminal,
  EARLY_INPUT_LIMIT,
  type TerminalApi,
  type TerminalHandle,
  type TerminalSink,
  type TerminalTarget,
} from './core-terminal.js';
export { EventHub, type AnyEvent, type EventData, type EventInput, type EventTable } from './event-hub.js';
export { wrapFramePort, type FramePort } from './port-transport.js';
export { LeasedReads, ReadLease, type ReadBuffers } from './read-lease.js';
export { HandleWrites, type HandleSocket, type WrittenLater } from './handle-writes.js';
export {
  afterThisTask,
  PooledReads,
  ReadBufferPool,
  SPLICE_ACK_DELAY_MS,
  spliceSocket,
  type ByteSocket,
  type SpliceOptions,
} from './splice.js';
export {
  wrapDataChannel,
  splitFrame,
  DATACHANNEL_MESSAGE_BYTES,
  JOINED_FRAMES_FEATURE,
  PACED_FEATURE,
  type DataChannelTransport,
  type DataChannelLike,
  type DataChannelTransportOptions,
} from './datachannel-transport.js';
export * from './webrtc.js';
export {
  RAW_LINK_ALPN,
  FrameReader,
  STREAMED_DATA_FRAME_BYTES,
  encodeLengthPrefixed,
  wrapByteStream,
  type ByteStreamBatching,
  type DuplexByteSocket,
} from './byte-stream-transport.js';
export { LINK_TLS_CIPHERS } from './tls-suites.js';
export { encodeReason, decodeReason } from './close-reason.js';
