import type { Disposable, FrameTransport } from '@hangar/shared';
import { portTransport, type PortLike } from './port-transport.js';

/**
 * The page asks for a port (preload: ipcRenderer.send(PORT_REQUEST_CHANNEL)); main answers on
 * PORT_CHANNEL with a fresh MessagePort whose other end serves the core API. The preload
 * (electron/preload/src/preload.cts) repeats these two names: it may import nothing.
 */
export const PORT_REQUEST_CHANNEL = 'hangar:port-request';
export const PORT_CHANNEL = 'hangar:port';

export interface SenderLike {
  readonly id: number;
  postMessage(channel: string, message: unknown, transfer: PortLike[]): void;
  once(event: 'destroyed', listener: () => void): unknown;
}

export interface IpcEventLike {
  sender: SenderLike;
  /** The frame that sent the message (null if it is already gone). */
  senderFrame: { url: string } | null;
}

/** The part of Electron's ipcMain used here; tests pass a stand-in. */
export interface IpcMainLike {
  on(channel: string, listener: (event: IpcEventLike) => void): unknown;
  removeListener(channel: string, listener: (event: IpcEventLike) => void): unknown;
}

export interface PortWiringOptions {
  ipcMain: IpcMainLike;
  /** `new MessageChannelMain()` in Electron. */
  createChannel: () => { port1: PortLike; port2: PortLike };
  /** Serves the core API over one UI's transport (CoreApiServer.serve). */
  serve: (transport: FrameTransport) => Disposable;
  /** Only our own pages get a port (a page navigated elsewhere must not reach the core). */
  isTrustedUrl: (url: string) => boolean;
  onRefused?: (url: string) => void;
}

/**
 * Hands each window a MessagePort to the core. A reload asks again: the window's previous
 * connection is closed first, so a page never holds two, and a closed window leaves none behind.
 */
export function wirePortRequests(options: PortWiringOptions): Disposable {
  const bySender = new Map<number, Disposable>();
  const onRequest = (event: IpcEventLike) => {
    const url = event.senderFrame?.url ?? '';
    if (!options.isTrustedUrl(url)) {
      options.onRefused?.(url);
      return;
    }
    const { sender } = event;
    const previous = bySender.get(sender.id);
    if (previous) void previous.dispose();
    else sender.once('destroyed', () => release(sender.id));
    const { port1, port2 } = options.createChannel();
    bySender.set(sender.id, options.serve(portTransport(port1)));
    sender.postMessage(PORT_CHANNEL, null, [port2]);
  };
  const release = (id: number) => {
    const connection = bySender.get(id);
    bySender.delete(id);
    if (connection) void connection.dispose();
  };
  options.ipcMain.on(PORT_REQUEST_CHANNEL, onRequest);
  return {
    dispose: () => {
      options.ipcMain.removeListener(PORT_REQUEST_CHANNEL, onRequest);
      for (const id of [...bySender.keys()]) release(id);
    },
  };
}
