/**
 * What the window's page may ask Chromium for. Electron grants every permission by default
 * (camera, microphone, notifications, geolocation, MIDI…); the page needs only the clipboard:
 * a terminal's Ctrl+Shift+C and Ctrl+Shift+V call navigator.clipboard.writeText and readText
 * (renderer/src/components/terminal-pane.tsx). Desktop notifications are shown by the core
 * through the Platform seam, in the main process, so the page never needs that permission.
 */
export const PAGE_PERMISSIONS: ReadonlySet<string> = new Set(['clipboard-sanitized-write', 'clipboard-read']);

/** The part of Electron's Session this uses; tests pass a stand-in. */
export interface PermissionSessionLike {
  setPermissionRequestHandler(
    handler: (
      webContents: unknown,
      permission: string,
      callback: (granted: boolean) => void,
      details: { requestingUrl?: string; isMainFrame?: boolean },
    ) => void,
  ): void;
  setPermissionCheckHandler(
    handler: (
      webContents: unknown,
      permission: string,
      requestingOrigin: string,
      details: { requestingUrl?: string; isMainFrame?: boolean },
    ) => boolean,
  ): void;
  /** USB, HID and serial devices: none, ever. */
  setDevicePermissionHandler(handler: (details: unknown) => boolean): void;
}

export interface PermissionPolicyOptions {
  /** Our own pages (app://hangar/…): only they get even the clipboard. */
  isTrustedUrl: (url: string) => boolean;
  onDenied?: (permission: string, url: string) => void;
}

/**
 * Denies every permission except PAGE_PERMISSIONS, and those only to our own page's main frame.
 * Both handlers are set: Chromium checks a permission before it asks for it, and an unanswered
 * check would fall back to Electron's grant-all default.
 */
export function installPermissionPolicy(session: PermissionSessionLike, options: PermissionPolicyOptions): void {
  const allowed = (permission: string, url: string, isMainFrame: boolean | undefined) => {
    const granted = PAGE_PERMISSIONS.has(permission) && isMainFrame === true && options.isTrustedUrl(url);
    if (!granted) options.onDenied?.(permission, url);
    return granted;
  };
  session.setPermissionRequestHandler((_webContents, permission, callback, details) =>
    callback(allowed(permission, details.requestingUrl ?? '', details.isMainFrame)),
  );
  session.setPermissionCheckHandler((_webContents, permission, requestingOrigin, details) =>
    allowed(permission, details.requestingUrl ?? requestingOrigin, details.isMainFrame),
  );
  session.setDevicePermissionHandler(() => false);
}
