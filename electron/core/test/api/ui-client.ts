import {
  ControlMessage,
  HangarError,
  Mux,
  SCHEMA_VERSION,
  wrapWebSocket,
  type CloseReason,
  type CoreMethod,
  type CoreResult,
  type FrameTransport,
  type LinkStream,
} from '@hangar/shared';
import WebSocket from 'ws';

/** What the renderer does, in a test: a 'client' Mux, requests on the control stream, events. */
export class UiClient {
  readonly mux: Mux;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: HangarError) => void }>();
  readonly events: { event: string; data: unknown }[] = [];

  constructor(transport: FrameTransport) {
    this.mux = new Mux(transport, { role: 'client' });
    this.mux.onControl((json) => {
      const message = ControlMessage.parse(JSON.parse(json));
      if (message.kind === 'event') this.events.push({ event: message.event, data: message.data });
      if (message.kind !== 'response') return;
      const pending = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.ok) pending?.resolve(message.result);
      else pending?.reject(HangarError.from(message.error));
    });
  }

  call<M extends CoreMethod>(method: M, params: unknown): Promise<CoreResult<M>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.mux.sendControl(JSON.stringify({ schema_version: SCHEMA_VERSION, kind: 'request', id, method, params }));
    });
  }

  /** Sends raw text on the control stream (for malformed-request tests). */
  raw(message: object): void {
    this.mux.sendControl(JSON.stringify(message));
  }

  /** A stream for terminal.open / jobs.logs, with everything received collected as text. */
  openStream(): { stream: LinkStream; text: () => string; closed: Promise<CloseReason> } {
    const stream = this.mux.openStream();
    let text = '';
    const decoder = new TextDecoder();
    stream.onData((data) => (text += decoder.decode(data, { stream: true })));
    const closed = new Promise<CloseReason>((resolve) => stream.onClose(resolve));
    return { stream, text: () => text, closed };
  }

  close(): void {
    this.mux.close();
  }
}

export interface ConnectOptions {
  token?: string | undefined;
  origin?: string | undefined;
  host?: string | undefined;
}

/** Opens the API WebSocket; rejects with the HTTP status when the server refuses. */
export function connectWs(port: number, options: ConnectOptions): Promise<WebSocket> {
  const query = options.token === undefined ? '' : `?token=${encodeURIComponent(options.token)}`;
  const headers: Record<string, string> = {};
  if (options.host) headers['Host'] = options.host;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api${query}`, {
    headers,
    ...(options.origin ? { origin: options.origin } : {}),
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_request, response) => {
      reject(new Error(`refused with ${response.statusCode}`));
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

export async function connectUi(port: number, token: string): Promise<UiClient> {
  const ws = await connectWs(port, { token, origin: `http://127.0.0.1:${port}` });
  return new UiClient(wrapWebSocket(ws as unknown as Parameters<typeof wrapWebSocket>[0]));
}

export async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
