// The core's local door, the hangar command's side (issue 18): a light entry (node:net, no zod,
// no SQLite, no core) that the command loads to reach a running core before it opens a core of
// its own. The serving side, LocalDoor, is exported from the core's main entry.
export { reachRunningCore, DEFAULT_GREETING_TIMEOUT_MS, type RunningCore, type ReachOptions } from './connect.js';
export { DoorClient, type DoorClientOptions } from './door-client.js';
export { coreSocketPath } from './paths.js';
export { hangarHome } from '../state/paths.js';
