// The benchmark's dev-server stand-in, in its own process as a dev server is: a static asset
// over HTTP and a WebSocket echo at /hmr. Prints its port.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const asset = Buffer.alloc(Number(process.argv[2] ?? 4096), 120);
const server = createServer((_req, res) => {
  res.setHeader('content-type', 'text/javascript');
  res.end(asset);
});
new WebSocketServer({ server, path: '/hmr' }).on('connection', (socket) =>
  socket.on('message', (data, binary) => socket.send(data, { binary })),
);
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
