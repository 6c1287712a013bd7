export * from './errors.js';
export * from './validate.js';
export * from './frames.js';
export * from './disposable.js';
export * from './protocol/control.js';
export * from './protocol/sessions.js';
export * from './protocol/host.js';
export * from './protocol/host-api.js';
