export { startAgent, type AgentOptions, type RunningAgent } from './agent.js';
export { AGENT_VERSION } from './version.js';
