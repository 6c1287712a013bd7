export {
  Supervisor,
  type Heartbeat,
  type SupervisorOptions,
  type SupervisedStart,
  type SupervisedRestart,
} from './supervisor.js';
export {
  DEFAULT_RESTART_POLICY,
  RestartBudget,
  systemClock,
  type Clock,
  type RestartPolicy,
  type RestartDecision,
} from './restart-policy.js';
export {
  EmbeddedAgent,
  EMBEDDED_HOST,
  AGENT_HEARTBEAT,
  agentBinPath,
  type EmbeddedAgentOptions,
} from './embedded-agent.js';
