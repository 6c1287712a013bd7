import {
  CORE_EVENTS,
  CoreApiClient,
  UI_WEBSOCKET_PROTOCOLS,
  uiWebSocketOptions,
  wrapWebSocket,
  type CloseReason,
  type CoreCallParams,
  type CoreCallResult,
  type CoreEvent,
  type CoreMethod,
  type FrameTransport,
  type LinkStream,
  type Mux,
} from '@hangar/shared';
import WebSocket from 'ws';
import { rawCall } from '../../../../test/support/raw-call.js';

/** What the renderer does, in a test: shared's CoreApiClient, with every event kept in order. */
export class UiClient {
  readonly api: CoreApiClient;
  readonly events: { event: string; data: unknown }[] = [];

  constructor(transport: FrameTransport) {
    this.api = new CoreApiClient(transport);
    for (const event of Object.keys(CORE_EVENTS) as CoreEvent[]) {
      this.api.on(event, (data) => this.events.push({ event, data }));
    }
  }

  get mux(): Mux {
    return this.api.mux;
  }

  call<M extends CoreMethod>(method: M, params: CoreCallParams<M>): Promise<CoreCallResult<M>> {
    return this.api.call(method, params);
  }

  /** Sends params unchecked, as a page that skips the client would: for what the core itself refuses. */
  callUnchecked(method: string, params: unknown): Promise<unknown> {
    return rawCall(this.api.mux, method, params);
  }

  /** Sends raw text on the control stream (for malformed-request tests). */
  raw(message: object): void {
    this.api.mux.sendControl(JSON.stringify(message));
  }

  /** A stream for terminal.open / jobs.logs, with everything received collected as text (acked as read). */
  openStream(): { stream: LinkStream; text: () => string; closed: Promise<CloseReason> } {
    const stream = this.api.mux.openStream();
    let text = '';
    const decoder = new TextDecoder();
    stream.onData((data) => (text += decoder.decode(data, { stream: true })));
    const closed = new Promise<CloseReason>((resolve) => stream.onClose(resolve));
    return { stream, text: () => text, closed };
  }

  close(): void {
    this.api.dispose();
  }
}

export interface ConnectOptions {
  token?: string | undefined;
  origin?: string | undefined;
  host?: string | undefined;
  /** Subprotocols offered, as the page offers UI_WEBSOCKET_PROTOCOLS; none by default. */
  protocols?: readonly string[];
}

/** Opens the API WebSocket; rejects with the HTTP status when the server refuses. */
export function connectWs(port: number, options: ConnectOptions): Promise<WebSocket> {
  const query = options.token === undefined ? '' : `?token=${encodeURIComponent(options.token)}`;
  const headers: Record<string, string> = {};
  if (options.host) headers['Host'] = options.host;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api${query}`, [...(options.protocols ?? [])], {
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
  const ws = await connectWs(port, {
    token,
    origin: `http://127.0.0.1:${port}`,
    protocols: UI_WEBSOCKET_PROTOCOLS,
  });
  // Joined frames as agreed, as the page's transport (renderer/src/api/transport.ts).
  return new UiClient(
    wrapWebSocket(ws as unknown as Parameters<typeof wrapWebSocket>[0], undefined, uiWebSocketOptions(ws.protocol)),
  );
}

export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
