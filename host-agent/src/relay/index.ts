export { enroll, defaultHostName, type EnrollOptions, type Enrollment } from './enroll.js';
export { RelayLink, type RelayBillingAttach, type RelayLinkOptions, type RelayLinkStatus } from './relay-link.js';
export { relayStatus, type RelayStatus } from './status.js';
export { noWebRtcYet, type IncomingSignal, type SignalHandler } from './signals.js';
export { dialSplice, SpliceDialer } from './splice-dial.js';
