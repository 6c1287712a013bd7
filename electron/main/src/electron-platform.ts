import { HangarError } from '@hangar/shared';
import { isWebUrl, type Platform } from '@hangar/desktop/core';
import { Notification, app, shell } from 'electron';

/** The Platform seam with Electron's native pieces: the OS browser, notifications, Downloads. */
export function electronPlatform(): Platform {
  return {
    kind: 'electron',
    async openExternal(url) {
      // Only web pages: a file: or custom-scheme URL could start a program.
      if (!isWebUrl(url)) throw new HangarError('E_FORBIDDEN', `refusing to open "${url}": only http and https URLs`);
      await shell.openExternal(url);
    },
    showNotification({ title, body }) {
      if (Notification.isSupported()) new Notification({ title, body }).show();
    },
    downloadsDir: () => app.getPath('downloads'),
  };
}
