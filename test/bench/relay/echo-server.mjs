// The reference for the relay benchmark: a plain `ws` server, no auth, no database, in a process
// of its own. `echo` comes back to its sender; `forward` goes to every client that said `watch`.
import { WebSocketServer } from 'ws';

const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
const watchers = new Set();
server.on('connection', (socket) => {
  socket.on('message', (data) => {
    const text = String(data);
    if (text === 'watch') watchers.add(socket);
    else if (text.startsWith('forward')) for (const watcher of watchers) watcher.send(text);
    else socket.send(text);
  });
  socket.on('close', () => watchers.delete(socket));
});
server.on('listening', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'));
