// A host agent's relay socket in a process of its own, so a test can kill -9 it the way a host
// dies (power cut, OOM kill): the kernel closes its TCP connection and the relay must notice.
// Uses the built shared package (npm run build), as the real agent will.
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';
import WebSocket from 'ws';
import { RelayAgentSocket } from '@hangar/shared';

const privateKey = createPrivateKey(process.env.HOST_KEY_PEM);
const publicKey = new Uint8Array(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(12));
const socket = new RelayAgentSocket({
  relayUrl: process.env.RELAY_URL,
  hostId: process.env.HOST_ID,
  signer: { publicKey, sign: (message) => new Uint8Array(sign(null, message, privateKey)) },
  socketFactory: (url) => new WebSocket(url),
  presence: () => ({ addresses: ['10.0.0.2:7070'], tailnet: [], version: 'child', issued_at: Date.now() }),
  statementsSeq: () => 0,
  backoff: { initialMs: 100, maxMs: 1000 },
});
socket.onState((state) => process.stdout.write(JSON.stringify(state) + '\n'));
socket.start();
