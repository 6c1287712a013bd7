import { fileURLToPath } from 'node:url';

// Relative to this file, which sits one level under electron/cli both as built by tsc (dist/) and
// as bundled (bundle/, every chunk at its top): the same paths hold for both.

/** electron/package.json: the version of hangar. */
export const DESKTOP_PACKAGE_JSON = new URL('../../package.json', import.meta.url);
/** electron/main/dist/main.js (the same layout in a packaged app). */
export const ELECTRON_MAIN = fileURLToPath(new URL('../../main/dist/main.js', import.meta.url));
