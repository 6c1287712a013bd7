// The core's local door (issue 18): a light entry (node:net, no SQLite, no core) that the hangar
// command loads to reach a running core before it opens a core of its own.
export { reachRunningCore, DEFAULT_GREETING_TIMEOUT_MS, type RunningCore, type ReachOptions } from './connect.js';
export { coreSocketPath } from './paths.js';
export { hangarHome } from '../state/paths.js';
export { LocalDoor, type LocalDoorOptions } from './local-door.js';
