import { describe, expect, it } from 'vitest';
import { isAppUrl } from '../../electron/main/src/app-requests.js';
import { installPermissionPolicy, type PermissionSessionLike } from '../../electron/main/src/permissions.js';

type RequestHandler = Parameters<PermissionSessionLike['setPermissionRequestHandler']>[0];
type CheckHandler = Parameters<PermissionSessionLike['setPermissionCheckHandler']>[0];

/** A stand-in for Electron's session.defaultSession: keeps the handlers main installs, to call them as Chromium does. */
function standInSession() {
  const installed: { request?: RequestHandler; check?: CheckHandler; device?: (details: unknown) => boolean } = {};
  const session: PermissionSessionLike = {
    setPermissionRequestHandler: (handler) => (installed.request = handler),
    setPermissionCheckHandler: (handler) => (installed.check = handler),
    setDevicePermissionHandler: (handler) => (installed.device = handler),
  };
  const denied: string[] = [];
  installPermissionPolicy(session, { isTrustedUrl: isAppUrl, onDenied: (permission) => denied.push(permission) });
  const request = (permission: string, requestingUrl = 'app://hangar/', isMainFrame = true) =>
    new Promise<boolean>((resolve) => installed.request!({}, permission, resolve, { requestingUrl, isMainFrame }));
  const check = (permission: string, requestingOrigin = 'app://hangar', isMainFrame = true) =>
    installed.check!(null, permission, requestingOrigin, { isMainFrame });
  return { installed, request, check, denied };
}

/**
 * Electron grants a page every permission unless main says otherwise. The binary cannot run
 * here, so the handlers main installs on the session are called as Chromium calls them.
 */
describe('the window’s page gets no permission it does not use', () => {
  it.each(['media', 'notifications', 'geolocation', 'midiSysex', 'display-capture', 'openExternal', 'fullscreen'])(
    'asking for %s is denied, even from our own page',
    async (permission) => {
      const session = standInSession();
      expect(await session.request(permission)).toBe(false);
      expect(session.check(permission)).toBe(false);
      expect(session.denied).toContain(permission);
    },
  );

  it('our page may copy and paste in a terminal (navigator.clipboard)', async () => {
    const session = standInSession();
    expect(await session.request('clipboard-sanitized-write')).toBe(true);
    expect(await session.request('clipboard-read')).toBe(true);
    expect(session.check('clipboard-sanitized-write')).toBe(true);
    expect(session.check('clipboard-read')).toBe(true);
  });

  it('a page that is not ours, or a frame inside ours, gets not even the clipboard', async () => {
    const session = standInSession();
    expect(await session.request('clipboard-read', 'https://evil.example/')).toBe(false);
    expect(session.check('clipboard-read', 'https://evil.example')).toBe(false);
    expect(await session.request('clipboard-read', 'app://hangar/', false)).toBe(false);
    expect(session.check('clipboard-sanitized-write', 'app://hangar', false)).toBe(false);
    expect(await session.request('clipboard-read', 'app://hangar.evil.example/')).toBe(false);
  });

  it('no USB, HID or serial device is ever granted', () => {
    const session = standInSession();
    expect(session.installed.device!({ deviceType: 'usb', origin: 'app://hangar' })).toBe(false);
  });
});
