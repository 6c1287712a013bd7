export { startAgent, type AgentOptions, type RunningAgent } from './agent.js';
export { AGENT_VERSION } from './version.js';
export {
  enroll,
  relayStatus,
  type EnrollOptions,
  type Enrollment,
  type RelayStatus,
  type SignalHandler,
  type IncomingSignal,
} from './relay/index.js';
