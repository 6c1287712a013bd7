/** @hangar/lane: lanes' records and native relay (lane/PROTOCOL.md). */
export {
  LANE_PREFACE,
  LANE_HEADER_LENGTH,
  GRANT_ID_LENGTH,
  RecordType,
  MAX_RECORD_PAYLOAD,
  MAX_CONTROL_PAYLOAD,
  LaneError,
  RecordReader,
  deriveLaneKeys,
  encodeLaneNo,
  laneHeader,
  sealRecord,
  type LaneErrorCode,
  type LaneKeys,
  type LaneRecord,
} from './records.js';
export {
  laneRelayOptions,
  loadNativeLanes,
  relaySockets,
  type AcceptedLane,
  type NativeLanes,
  type Relay,
  type RelayEnd,
  type RelayOptions,
} from './native.js';
