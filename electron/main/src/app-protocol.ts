import { protocol } from 'electron';
import { APP_SCHEME, appRequestHandler } from './app-requests.js';

export { APP_ORIGIN, isAppUrl } from './app-requests.js';

/** Must run before app 'ready': gives app:// a real origin, so 'self' and fetch work as on the web. */
export function registerAppScheme(): void {
  protocol.registerSchemesAsPrivileged([
    { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } },
  ]);
}

/** Serves renderer/dist at app://hangar/ (see app-requests.ts for what is and is not served). */
export function serveRenderer(root: string): void {
  protocol.handle(APP_SCHEME, appRequestHandler(root));
}
