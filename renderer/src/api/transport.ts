import {
  HangarError,
  UI_WEBSOCKET_PROTOCOLS,
  uiWebSocketOptions,
  wrapFramePort,
  wrapWebSocket,
  type FrameTransport,
} from '@hangar/shared';

/** What the Electron preload exposes on the page (see electron/preload). */
declare global {
  interface Window {
    hangarDesktop?: { platform?: string; requestPort?(): void };
  }
}

const TOKEN_KEY = 'hangar.token';
/** Longest we wait for the preload to hand over its port or the WebSocket to open. */
const CONNECT_TIMEOUT_MS = 10_000;

export function isDesktop(): boolean {
  return typeof window !== 'undefined' && window.hangarDesktop !== undefined;
}

/**
 * The per-launch secret of web mode. It arrives in the address's fragment (never sent to the
 * server in a request line or a Referer), is moved to sessionStorage so a reload of this tab
 * still works, and is removed from the address bar so it is not copied along with the URL.
 */
export function takeWebToken(): string | undefined {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    const token = decodeURIComponent(match[1]!);
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, '', location.pathname + location.search);
    return token;
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

export async function connectToCore(): Promise<FrameTransport> {
  return isDesktop() ? connectDesktop() : connectWeb();
}

async function connectWeb(): Promise<FrameTransport> {
  const token = takeWebToken();
  if (!token) {
    throw new HangarError(
      'E_UNAVAILABLE',
      'This page was opened without its secret. Open the address that `hangar ui` printed (it ends in #token=…).',
    );
  }
  // Joined frames offered: the core picks them if it splits them (shared's UI_WEBSOCKET_PROTOCOLS).
  const socket = new WebSocket(`ws://${location.host}/api?token=${encodeURIComponent(token)}`, [
    ...UI_WEBSOCKET_PROTOCOLS,
  ]);
  socket.binaryType = 'arraybuffer';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(unreachable()), CONNECT_TIMEOUT_MS);
    socket.addEventListener('open', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.addEventListener('close', () => {
      clearTimeout(timer);
      reject(unreachable());
    });
  });
  return wrapWebSocket(socket, undefined, uiWebSocketOptions(socket.protocol));
}

function unreachable(): HangarError {
  return new HangarError(
    'E_UNAVAILABLE',
    'Could not reach the Hangar core. If `hangar ui` was restarted, open the new address it printed.',
  );
}

async function connectDesktop(): Promise<FrameTransport> {
  const port = await new Promise<MessagePort>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new HangarError('E_UNAVAILABLE', 'The Hangar window did not get a connection to its core; restart Hangar.'),
        ),
      CONNECT_TIMEOUT_MS,
    );
    const onMessage = (event: MessageEvent) => {
      if (event.source !== window || (event.data as { type?: unknown })?.type !== 'hangar:port') return;
      const received = event.ports[0];
      if (!received) return;
      clearTimeout(timer);
      window.removeEventListener('message', onMessage);
      resolve(received);
    };
    // Listen first, then ask: the port arrives as a window message (electron/preload/README.md).
    window.addEventListener('message', onMessage);
    window.hangarDesktop?.requestPort?.();
  });
  return wrapMessagePort(port);
}

/** The page's end of the port the preload handed over (shared's wrapFramePort does the rest). */
export function wrapMessagePort(port: MessagePort): FrameTransport {
  return wrapFramePort(
    {
      postMessage: (frame) => port.postMessage(frame),
      start: () => port.start(),
      close: () => port.close(),
      onMessage: (listener) => port.addEventListener('message', (event) => listener(event.data)),
      // Chromium fires 'close' on an entangled port when the other side goes away (Electron ≥ 22).
      onClose: (listener) => port.addEventListener('close', listener),
    },
    'the Hangar core closed the connection',
  );
}
