// bench:ui's reference row for keystroke → rendered: the same xterm.js, in a page of the same
// browser, fed by a WebSocket echo server on loopback that answers each message at once. No core,
// agent, link, tmux or React: what is left is Chromium (its network process, the page's tasks, the
// frame) and xterm (its key handling, parse and DOM renderer), the floor the web UI's path stands on.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import { ROOT } from '../support.mjs';

const XTERM = join(ROOT, 'node_modules', '@xterm', 'xterm');
/** Ctrl+U, which the bench types to clear its line: answered as a shell's line editor would. */
const CTRL_U = 0x15;
const CLEAR_LINE = Buffer.from('\r\x1b[2K');

/**
 * The page: one xterm (DOM renderer, Hangar's font size, no cursor blink as tmux sets it) in
 * `#panel-<id>`, typed keys sent as one binary message each on a WebSocket to `path`, messages
 * written to xterm with the bench's parse hook (hangarBenchHooks.writeParsed) in xterm's write
 * callback. `size` ({ cols, rows }): a fixed terminal size (tmux-reference.mjs), else xterm's default.
 */
const page = (id, path, size) => `<!doctype html>
<html><head><meta charset="utf-8"><link rel="stylesheet" href="/xterm.css">
<style>html, body { margin: 0; height: 100%; background: #000; } #panel-${id} { width: ${size ? 1270 : 1000}px; height: ${size ? 790 : 600}px; }</style>
</head><body><div id="panel-${id}"></div><script src="/xterm.js"></script><script>
const term = new Terminal({ fontFamily: 'monospace', fontSize: 13, cursorBlink: false, scrollback: 5000${size ? `, cols: ${size.cols}, rows: ${size.rows}` : ''} });
term.open(document.getElementById('panel-${id}'));
const socket = new WebSocket('ws://' + location.host + '${path}');
socket.binaryType = 'arraybuffer';
const encoder = new TextEncoder();
socket.addEventListener('message', (event) => {
  term.write(new Uint8Array(event.data), () => window.hangarBenchHooks?.writeParsed(performance.now()));
});
term.onData((data) => socket.send(encoder.encode(data)));
socket.addEventListener('open', () => document.body.dataset.ready = '1');
</script></body></html>`;

/**
 * Serves the page (terminal in `#panel-<id>`) and a WebSocket at `path`; `onConnection(ws)` for
 * each connection. Resolves to `url`, the page's address, and `close`.
 */
export async function servePage(id, path, onConnection, size) {
  const http = createServer((request, response) => {
    const files = {
      '/': ['text/html', () => page(id, path, size)],
      '/xterm.js': ['text/javascript', () => readFileSync(join(XTERM, 'lib', 'xterm.js'))],
      '/xterm.css': ['text/css', () => readFileSync(join(XTERM, 'css', 'xterm.css'))],
    };
    const file = files[request.url ?? '/'];
    if (!file) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': file[0] }).end(file[1]());
  });
  const wss = new WebSocketServer({ server: http, path, perMessageDeflate: false });
  wss.on('connection', onConnection);
  await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${http.address().port}/`,
    close: () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      http.close();
    },
  };
}

/** Starts the echo server; `url` is the page with its terminal in `#panel-<id>`. */
export function startEchoReference(id) {
  return servePage(id, '/echo', (ws) => {
    ws.on('message', (data) => {
      const bytes = Buffer.from(data);
      ws.send(bytes.length === 1 && bytes[0] === CTRL_U ? CLEAR_LINE : bytes);
    });
  });
}
