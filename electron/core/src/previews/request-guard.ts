/**
 * The first request on each connection to a preview's local port, checked before anything
 * reaches the host. A preview listens on this computer's loopback, where any web page the user
 * visits can aim requests; a DNS-rebinding page (evil.example resolving to 127.0.0.1) would
 * reach it with `Host: evil.example`. So a connection is forwarded only if its first request
 * names this computer (localhost, *.localhost, 127.0.0.1, [::1]) and this port. Checking the
 * first request is enough: a browser reuses a connection only for the origin that opened it.
 * TLS (a dev server with its own certificate) passes unread: a rebinding page cannot complete a
 * handshake for a name the certificate does not carry.
 */

/** Node's own limit on a request head is 16 KiB; dev servers with big cookies get more room. */
export const MAX_REQUEST_HEAD_BYTES = 64 * 1024;

export type HeadVerdict =
  { kind: 'more' } | { kind: 'forward' } | { kind: 'refuse'; status: 400 | 403 | 431; message: string };

const TLS_HANDSHAKE = 0x16;
const REQUEST_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP\/1\.([01])$/;

export function checkRequestHead(head: Uint8Array, localPort: number): HeadVerdict {
  if (head.length === 0) return { kind: 'more' };
  if (head[0] === TLS_HANDSHAKE) return { kind: 'forward' };
  const text = Buffer.from(head.buffer, head.byteOffset, head.byteLength).toString('latin1');
  const lineEnd = text.indexOf('\r\n');
  if (lineEnd >= 0 && !REQUEST_LINE.test(text.slice(0, lineEnd))) return notHttp();
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) {
    if (head.length > MAX_REQUEST_HEAD_BYTES) {
      return { kind: 'refuse', status: 431, message: `the request head is over ${MAX_REQUEST_HEAD_BYTES} bytes` };
    }
    return lineEnd < 0 && head.length > 8192 ? notHttp() : { kind: 'more' };
  }
  const [requestLine, ...headerLines] = text.slice(0, end).split('\r\n');
  const minor = REQUEST_LINE.exec(requestLine!)![1];
  const hosts = headerLines
    .filter((line) => /^host[ \t]*:/i.test(line))
    .map((line) => line.slice(line.indexOf(':') + 1).trim());
  if (hosts.length > 1) return { kind: 'refuse', status: 400, message: 'the request has more than one Host header' };
  if (hosts.length === 0) {
    // HTTP/1.0 may omit Host; browsers always send it, so no web page is behind such a request.
    return minor === '0'
      ? { kind: 'forward' }
      : { kind: 'refuse', status: 400, message: 'HTTP/1.1 needs a Host header' };
  }
  return hostAllowed(hosts[0]!, localPort)
    ? { kind: 'forward' }
    : {
        kind: 'refuse',
        status: 403,
        message:
          `Host "${hosts[0]}" is not this computer. Hangar previews answer only to ` +
          `http://localhost:${localPort}/ (or 127.0.0.1, [::1], *.localhost), so that other web pages cannot reach ` +
          'your dev server through a DNS-rebinding trick.',
      };
}

function notHttp(): HeadVerdict {
  return {
    kind: 'refuse',
    status: 400,
    message: 'previews carry HTTP/1 (and WebSocket over it); this is not an HTTP/1 request',
  };
}

export function hostAllowed(value: string, localPort: number): boolean {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(value);
  if (!match) return false;
  const name = match[1]!.toLowerCase().replace(/\.$/, '');
  if (match[2] !== undefined && Number(match[2]) !== localPort) return false;
  return name === 'localhost' || name.endsWith('.localhost') || name === '127.0.0.1' || name === '[::1]';
}

/** A complete plain-text answer, for refusals and for a preview the host cannot serve. */
export function plainResponse(status: number, message: string): Uint8Array {
  const body = Buffer.from(`${message}\n`, 'utf8');
  const head =
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${body.length}\r\n` +
    'Cache-Control: no-store\r\n' +
    'Connection: close\r\n\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  508: 'Loop Detected',
};
