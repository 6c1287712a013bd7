import { parentPort } from 'node:worker_threads';
import { generateTlsCert } from './tls-generate.js';

// Runs in a worker thread (see tls.ts): the X.509 libraries live and die with this thread.
generateTlsCert().then(
  (made) => parentPort!.postMessage({ ok: true, ...made }),
  (error: unknown) => parentPort!.postMessage({ ok: false, message: String(error) }),
);
