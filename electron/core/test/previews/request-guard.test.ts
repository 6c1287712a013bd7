import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkRequestHead, hostAllowed, MAX_REQUEST_HEAD_BYTES } from '../../src/previews/request-guard.js';

const PORT = 5173;
const bytes = (text: string) => Buffer.from(text, 'latin1');
const request = (host: string | undefined, extra = '') =>
  `GET /src/main.ts HTTP/1.1\r\n${host === undefined ? '' : `Host: ${host}\r\n`}Accept: */*\r\n${extra}\r\n`;

describe('the first request on a preview connection', () => {
  it('is forwarded when it names this computer and this port', () => {
    for (const host of [
      'localhost:5173',
      'LOCALHOST:5173',
      'localhost',
      '127.0.0.1:5173',
      '[::1]:5173',
      'app.localhost:5173',
      'localhost.:5173',
    ]) {
      expect(checkRequestHead(bytes(request(host)), PORT), host).toEqual({ kind: 'forward' });
    }
  });

  it('is refused when it names another computer, another port, or several hosts', () => {
    for (const host of [
      'evil.example:5173',
      'evil.example',
      'localhost:5174',
      '127.0.0.2:5173',
      'localhost.evil.example:5173',
      '10.0.0.1:5173',
      'localhost:5173:1',
      '[::2]:5173',
    ]) {
      expect(checkRequestHead(bytes(request(host)), PORT), host).toMatchObject({ kind: 'refuse', status: 403 });
    }
    expect(checkRequestHead(bytes(request('localhost:5173', 'Host: evil.example\r\n')), PORT)).toMatchObject({
      kind: 'refuse',
      status: 400,
    });
    expect(checkRequestHead(bytes(request(undefined)), PORT)).toMatchObject({ kind: 'refuse', status: 400 });
    expect(checkRequestHead(bytes('GET / HTTP/1.0\r\n\r\n'), PORT)).toEqual({ kind: 'forward' });
  });

  it('is not HTTP/1 (another protocol, HTTP/2 prior knowledge): refused', () => {
    expect(checkRequestHead(bytes('SSH-2.0-OpenSSH_9\r\n'), PORT)).toMatchObject({ kind: 'refuse', status: 400 });
    expect(checkRequestHead(bytes('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), PORT)).toMatchObject({ kind: 'refuse' });
    expect(checkRequestHead(bytes('x'.repeat(9000)), PORT)).toMatchObject({ kind: 'refuse', status: 400 });
    expect(checkRequestHead(bytes(`GET / HTTP/1.1\r\nX: ${'a'.repeat(MAX_REQUEST_HEAD_BYTES)}`), PORT)).toMatchObject({
      kind: 'refuse',
      status: 431,
    });
  });

  it('passes TLS unread (a dev server with its own certificate)', () => {
    expect(checkRequestHead(Uint8Array.from([0x16, 0x03, 0x01, 0x02, 0x00]), PORT)).toEqual({ kind: 'forward' });
  });

  it('gets the same verdict however the head is split into reads', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('localhost:5173', 'evil.example:5173', '[::1]:5173', 'localhost:80'),
        fc.string({ unit: fc.constantFrom('a', 'b', '-', '/', '='), maxLength: 200 }),
        fc.integer({ min: 1, max: 400 }),
        (host, cookie, cut) => {
          const whole = bytes(request(host, `Cookie: ${cookie}\r\n`));
          const verdict = checkRequestHead(whole, PORT);
          const at = Math.min(cut, whole.length - 1);
          const prefix = checkRequestHead(whole.subarray(0, at), PORT);
          // A prefix either waits for more or is already refused for a reason the whole has too.
          if (prefix.kind === 'more') return true;
          return prefix.kind === verdict.kind;
        },
      ),
    );
  });

  it('accepts only names of this computer, whatever else is typed', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (name) => {
        const allowed = hostAllowed(`${name}:${PORT}`, PORT);
        const lower = name.toLowerCase().replace(/\.$/, '');
        const local =
          lower === 'localhost' || lower.endsWith('.localhost') || lower === '127.0.0.1' || lower === '[::1]';
        return allowed === (local && !/[:[\]]/.test(name.replace(/^\[::1\]$/, '')));
      }),
    );
  });
});
