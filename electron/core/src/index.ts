export { HangarCore, type CoreOptions, type HostView, type HostSessions } from './core.js';
export { HostConnection, type HostStatus } from './connection/host-connection.js';
export { TerminalClient, type TerminalStatus, type TerminalEnd } from './terminal/terminal-client.js';
export { hangarHome } from './state/paths.js';
