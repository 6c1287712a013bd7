/**
 * The only bridge between the sandboxed page and the app (VS Code's sandboxed preload): no Node,
 * no keys, no ipcRenderer for the page. It exposes `window.hangarDesktop` and hands over a
 * MessagePort to the core; the protocol on that port is the same as web mode's WebSocket.
 * Contract for the renderer: electron/preload/README.md. Sandboxed preloads cannot load our
 * modules, so the channel names are repeated here (electron/main/src/ipc.ts; a test checks them).
 */
import electron = require('electron');

const PORT_REQUEST_CHANNEL = 'hangar:port-request';
const PORT_CHANNEL = 'hangar:port';

electron.ipcRenderer.on(PORT_CHANNEL, (event) => {
  // Same window only ('*' is about origin, and a MessagePort can only be transferred, not read).
  window.postMessage({ type: 'hangar:port' }, '*', event.ports);
});

electron.contextBridge.exposeInMainWorld('hangarDesktop', {
  platform: process.platform,
  /** Asks for a (new) port to the core; it arrives as a window message {type: 'hangar:port'}, ports[0]. */
  requestPort: (): void => electron.ipcRenderer.send(PORT_REQUEST_CHANNEL),
});
