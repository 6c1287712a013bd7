import type { HangarCore } from '@hangar/desktop/core';
import { Menu, Tray, nativeImage, type BrowserWindow, type MenuItemConstructorOptions } from 'electron';

/** 16×16 hangar silhouette as a template image (macOS tints it for light and dark menu bars). */
const TRAY_ICON =
  'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9hAAAANElEQVR4nGNgwA3+o2GSALpmkgzBpZkoQwhpxmsIsZqxGkKqZqoYQl0vDE4DSJUfNYBcAwBxKZVraLFiNAAAAABJRU5ErkJggg==';
/** Host status in the tray is a glance, not a live view: a few seconds late is fine. */
const TRAY_REFRESH_MS = 3000;
const STATUS_MARK = { online: '●', connecting: '◐', offline: '○' } as const;

/** The standard menus by role, so every platform gets its usual shortcuts (copy, paste, zoom, quit…). */
export function installAppMenu(): void {
  const template: MenuItemConstructorOptions[] = [
    ...(process.platform === 'darwin' ? [{ role: 'appMenu' as const }] : []),
    { role: 'fileMenu' },
    { role: 'editMenu' },
    { role: 'viewMenu' },
    { role: 'windowMenu' },
  ];
  Menu.setApplicationMenu(Menu.buildFromTemplate(template));
}

/** A tray icon listing each host with its status; clicking shows the window. */
export function createTray(core: HangarCore, showWindow: () => BrowserWindow): { dispose(): void } {
  const icon = nativeImage.createFromDataURL(TRAY_ICON);
  icon.setTemplateImage(true);
  const tray = new Tray(icon);
  let last = '';
  const refresh = () => {
    const hosts = core.listHosts();
    const summary = JSON.stringify(hosts.map((h) => [h.name, h.status]));
    if (summary === last) return;
    last = summary;
    const online = hosts.filter((h) => h.status === 'online').length;
    tray.setToolTip(`Hangar: ${online} of ${hosts.length} hosts online`);
    tray.setContextMenu(
      Menu.buildFromTemplate([
        ...hosts.map((h) => ({ label: `${STATUS_MARK[h.status]} ${h.name} — ${h.status}`, enabled: false })),
        ...(hosts.length > 0 ? [{ type: 'separator' as const }] : []),
        { label: 'Show Hangar', click: () => showWindow().show() },
        { role: 'quit' },
      ]),
    );
  };
  refresh();
  const timer = setInterval(refresh, TRAY_REFRESH_MS);
  tray.on('click', () => showWindow().show());
  return {
    dispose: () => {
      clearInterval(timer);
      tray.destroy();
    },
  };
}
