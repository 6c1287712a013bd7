export {
  LinkServer,
  HANDSHAKE_TIMEOUT_MS,
  LINK_PATH,
  type AuthenticatedLink,
  type LinkServerOptions,
} from './server.js';
export { issuePairingCode, PAIRING_CODE_TTL_MS, MAX_FAILED_ATTEMPTS, type IssuedPairingCode } from './pairing.js';
