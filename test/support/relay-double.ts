import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import WebSocket, { WebSocketServer } from 'ws';
import type { HostPresence, RelayToAgent } from '@hangar/shared';

/**
 * A test double of a compromised relay: an HTTP and WebSocket server in front of a real
 * `hangar-relay` that passes everything on, except what a test tells it to lie about. It speaks
 * the relay's documented API (relay/PROTOCOL.md: `POST /v1/<procedure>`, the `/v1/agent` and
 * `/v1/device` sockets), so the app and the agent talk to it as they would to a relay whose
 * operator turned hostile. The real relay must run with `--public-url` set to this double's URL
 * (clients sign the origin they dial).
 */
export class RelayDouble implements AsyncDisposable {
  /** Rewrites every host the relay describes (hosts.list and the device socket's presence). */
  rewriteHost: ((host: HostPresence) => HostPresence) | undefined;
  /** Rewrites the result of any other procedure it passes on (what it returns replaces the result). */
  rewriteResult: ((method: string, result: unknown) => unknown) | undefined;
  /**
   * Drops a call it is given (the connection closed, no answer), as a relay that went away at that
   * moment: for each call, whether to drop it.
   */
  dropCall: ((method: string, body: string) => boolean) | undefined;
  /** Answers these procedures itself with this status and JSON body (a relay without them, say). */
  readonly answers = new Map<string, { status: number; body: unknown }>();
  /** Answers hosts.enroll itself, with success, for a token already used once through it. */
  replayUsedTokens = false;
  /**
   * Answers a device's splice (PROTOCOL.md "Relayed links") itself instead of asking the host:
   * switches protocols and speaks TLS with this certificate, as a relay posing as the host would.
   */
  answerSplices: { cert: string; key: string } | undefined;
  /** Splices it answered itself. */
  splicesAnswered = 0;
  /** Every procedure a client called through it, in order (answered or passed on). */
  readonly calls: string[] = [];
  private upstream = '';
  private readonly enrolled = new Map<string, string>();
  private readonly sockets = new WebSocketServer({ noServer: true });
  private readonly agents = new Set<WebSocket>();
  private readonly raw = new Set<Duplex>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(host = '127.0.0.1'): Promise<RelayDouble> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    const { port } = server.address() as { port: number };
    const double = new RelayDouble(server, `http://${host}:${port}`);
    server.on('request', (request, response) => void double.http(request, response));
    server.on('upgrade', (request, socket, head) => double.upgrade(request, socket, head));
    return double;
  }

  /** The real relay behind it (started after the double, with --public-url double.url). */
  setUpstream(url: string): void {
    this.upstream = url.replace(/\/+$/, '');
  }

  /** Sends a message of its own making to every connected agent, as the relay would. */
  sendToAgents(message: RelayToAgent): void {
    for (const agent of this.agents) agent.send(JSON.stringify(message));
  }

  private async http(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of request) body += (chunk as Buffer).toString();
    const method = request.url?.startsWith('/v1/') ? request.url.slice(4) : '';
    if (method) this.calls.push(method);
    if (this.dropCall?.(method, body)) {
      request.socket.destroy();
      return;
    }
    const answer = this.answers.get(method);
    if (answer !== undefined) {
      response.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
      return;
    }
    if (method === 'hosts.enroll' && this.replayUsedTokens) {
      const tokenId = (JSON.parse(body) as { token_id?: string }).token_id ?? '';
      const answer = this.enrolled.get(tokenId);
      if (answer !== undefined) {
        response.writeHead(200, { 'content-type': 'application/json' }).end(answer);
        return;
      }
    }
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (request.headers.authorization) headers['authorization'] = request.headers.authorization;
    const upstream = await fetch(`${this.upstream}${request.url}`, {
      method: request.method ?? 'GET',
      headers,
      ...(request.method === 'POST' ? { body } : {}),
    });
    let text = await upstream.text();
    if (upstream.status === 200 && method === 'hosts.list' && this.rewriteHost) {
      const listed = JSON.parse(text) as { hosts: HostPresence[] };
      text = JSON.stringify({ hosts: listed.hosts.map(this.rewriteHost) });
    }
    if (upstream.status === 200 && this.rewriteResult) {
      text = JSON.stringify(this.rewriteResult(method, JSON.parse(text)));
    }
    if (upstream.status === 200 && method === 'hosts.enroll') {
      this.enrolled.set((JSON.parse(body) as { token_id: string }).token_id, text);
    }
    const out: Record<string, string> = { 'content-type': upstream.headers.get('content-type') ?? 'application/json' };
    const retry = upstream.headers.get('retry-after');
    if (retry) out['retry-after'] = retry;
    response.writeHead(upstream.status, out).end(text);
  }

  private upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = request.url ?? '';
    this.raw.add(socket);
    socket.on('close', () => this.raw.delete(socket));
    if (path === '/v1/splice' && this.answerSplices) {
      this.splicesAnswered++;
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: hangar-splice/1\r\n\r\n');
      if (head.length > 0) socket.unshift(head);
      const tls = new TLSSocket(socket, { isServer: true, ...this.answerSplices, minVersion: 'TLSv1.3' });
      tls.on('error', () => socket.destroy());
      return;
    }
    if (path === '/v1/splice' || path === '/v1/splice/accept') {
      // Passed on byte for byte: the request as it came, then both directions.
      const upstream = connect(Number(new URL(this.upstream).port), new URL(this.upstream).hostname);
      let raw = `${request.method} ${path} HTTP/1.1\r\n`;
      for (let i = 0; i < request.rawHeaders.length; i += 2)
        raw += `${request.rawHeaders[i]}: ${request.rawHeaders[i + 1]}\r\n`;
      upstream.write(`${raw}\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket).pipe(upstream);
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
      upstream.on('close', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
      return;
    }
    if (path !== '/v1/agent' && path !== '/v1/device') {
      socket.destroy();
      return;
    }
    this.sockets.handleUpgrade(request, socket, head, (client) => {
      const relay = new WebSocket(`${this.upstream.replace(/^http/, 'ws')}${path}`);
      const early: string[] = [];
      if (path === '/v1/agent') {
        this.agents.add(client);
        client.on('close', () => this.agents.delete(client));
      }
      client.on('message', (data) => {
        if (relay.readyState === WebSocket.OPEN) relay.send(data.toString());
        else early.push(data.toString());
      });
      relay.on('open', () => {
        for (const message of early.splice(0)) relay.send(message);
      });
      relay.on('message', (data) => client.send(this.toClient(data.toString())));
      relay.on('close', (code, reason) => client.close(code === 1005 ? 1000 : code, reason.toString()));
      relay.on('error', () => client.terminate());
      client.on('close', () => relay.close());
      client.on('error', () => relay.terminate());
    });
  }

  private toClient(text: string): string {
    if (!this.rewriteHost) return text;
    const message = JSON.parse(text) as { type: string; host?: HostPresence };
    if (message.type !== 'presence' || message.host === undefined) return text;
    return JSON.stringify({ ...message, host: this.rewriteHost(message.host) });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const client of this.sockets.clients) client.terminate();
    for (const socket of this.raw) socket.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
