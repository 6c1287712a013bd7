import type { BrowserWindowConstructorOptions } from 'electron';
import type { windowOpenHandler } from './external-links.js';
import type { WindowState } from './window-state.js';

/**
 * The window's settings: the page is sandboxed, isolated from the preload and has no Node; it
 * reaches the core only through the MessagePort the preload hands it.
 */
export function windowOptions(state: WindowState, preload: string): BrowserWindowConstructorOptions {
  return {
    ...state,
    minWidth: 640,
    minHeight: 400,
    show: false,
    title: 'Hangar',
    webPreferences: {
      preload,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      spellcheck: false,
    },
  };
}

/** The part of a window's webContents that decides where its page may go. */
export interface NavigationControl {
  setWindowOpenHandler(handler: ReturnType<typeof windowOpenHandler>): void;
  on(event: 'will-navigate', listener: (event: { preventDefault(): void }, url: string) => void): unknown;
}

/** Links open in the user's browser (onWindowOpen), and the page never navigates off the app. */
export function guardNavigation(
  contents: NavigationControl,
  onWindowOpen: ReturnType<typeof windowOpenHandler>,
  isAppUrl: (url: string) => boolean,
): void {
  contents.setWindowOpenHandler(onWindowOpen);
  contents.on('will-navigate', (event, url) => {
    if (!isAppUrl(url)) event.preventDefault();
  });
}

/** One Hangar per user: a second launch quits and the first comes to the front ('second-instance'). */
export function runSingleInstance(
  app: { requestSingleInstanceLock(): boolean; quit(): void },
  start: () => void,
): boolean {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return false;
  }
  start();
  return true;
}
