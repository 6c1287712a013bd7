import { connect } from 'node:net';
import { parseHostAddress } from '@hangar/shared';

/** How long a published address may take to accept a TCP connection. */
const DIAL_TIMEOUT_MS = 3_000;
/** After the first address answers, others that answer this soon still count (a preferred one may be a bit slower). */
const GRACE_MS = 250;

/**
 * The addresses of `candidates` that accept a TCP connection, in the order given (a host publishes
 * its best first: listen address, interfaces, loopback last, then tailnet). All are tried at once,
 * so a LAN address from another network that never answers costs at most 3 s, not 3 s each; the
 * handshake then runs on the answering ones one at a time (a first link must not run twice).
 */
export async function answering(candidates: string[], timeoutMs = DIAL_TIMEOUT_MS): Promise<string[]> {
  const unique = [...new Set(candidates)];
  const ok = new Set<string>();
  await new Promise<void>((resolve) => {
    let pending = unique.length;
    let grace: NodeJS.Timeout | undefined;
    const overall = setTimeout(finish, timeoutMs);
    function finish() {
      clearTimeout(overall);
      clearTimeout(grace);
      resolve();
    }
    if (pending === 0) return finish();
    for (const address of unique) {
      probe(address, timeoutMs).then((answered) => {
        if (answered) {
          ok.add(address);
          grace ??= setTimeout(finish, GRACE_MS);
        }
        if (--pending === 0) finish();
      }, finish);
    }
  });
  return unique.filter((address) => ok.has(address));
}

function probe(address: string, timeoutMs: number): Promise<boolean> {
  const target = parseHostAddress(address);
  if (target === undefined) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = connect({ host: target.host, port: target.port });
    const done = (answered: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    // Refused, unreachable, a name that does not resolve: this address does not answer.
    socket.once('error', () => done(false));
  });
}
