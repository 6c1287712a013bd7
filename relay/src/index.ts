export { startRelay, createLogger, type RelayOptions, type RunningRelay } from './server.js';
export { openStore, type StorageConfig, type RelayStore } from './store/db.js';
export { DEFAULT_PASSWORD_COST } from './accounts/passwords.js';
export { ENROLL_TOKEN_TTL_MS } from './api/hosts.js';
