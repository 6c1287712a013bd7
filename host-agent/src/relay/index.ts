export { enroll, defaultHostName, type EnrollOptions, type Enrollment } from './enroll.js';
export { relayStatus, type RelayStatus } from './status.js';
