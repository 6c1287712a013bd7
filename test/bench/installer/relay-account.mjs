// The relay side of the installer benchmark: a real `hangar-relay serve` on loopback (SQLite), an
// account signed up with a device key, enrollment lines as `hangar hosts enroll-token` makes them,
// and the account's presence as the app's "Enroll a host" dialog sees it (the device socket),
// with the time of every change.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import WebSocket from 'ws';
import { RelayClient, RelayDeviceSocket, encodeEnrollToken, makeLoginProof, toHex } from '@hangar/shared';
import { startRelay } from '../support.mjs';

/** Starts a relay with its data in `dataDir` and signs up one account; dispose with stop(). */
export async function startRelayAccount(dataDir) {
  // Cheap scrypt (the relay benchmark measures sign-ins): this one measures the installer.
  const { child, url } = await startRelay(['--listen', '127.0.0.1:0', '--data', dataDir, '--password-hash-cost', '10']);
  const client = new RelayClient({ url });
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(12));
  const key = {
    publicKey: toHex(raw),
    signer: { publicKey: raw, sign: (m) => new Uint8Array(sign(null, m, privateKey)) },
  };
  const email = `bench-${randomBytes(4).toString('hex')}@example.com`;
  let session = await client.call('auth.signup', {
    email,
    password: 'a benchmark password',
    device: { public_key: key.publicKey, name: 'bench' },
    proof: makeLoginProof(key.signer, { relayOrigin: client.origin, identity: email }),
  });
  /** A fresh access token (they last 10 minutes; a run of the benchmark may take longer). */
  const accessToken = async () => {
    if (session.access_expires_at - Date.now() < 60_000) {
      session = { ...session, ...(await client.call('auth.refresh', { refresh_token: session.refresh_token })) };
    }
    return session.access_token;
  };

  // Every presence change of the account's hosts, with when it arrived (performance.now()).
  const changes = [];
  const waiters = [];
  const device = new RelayDeviceSocket({
    relayUrl: url,
    signer: key.signer,
    socketFactory: (socketUrl) => new WebSocket(socketUrl),
    accessToken,
  });
  device.onPresence((host) => {
    changes.push({ at: performance.now(), host_id: host.host_id, online: host.online });
    for (const waiter of [...waiters]) waiter();
  });
  device.start();

  return {
    url,
    /** One `hgr1_` line, valid 15 minutes, single use. */
    async enrollLine(name = 'bench') {
      const token = await client.call('hosts.enroll_token', { name }, { accessToken: await accessToken() });
      return encodeEnrollToken({
        v: 1,
        r: url,
        i: token.token_id,
        s: token.relay_secret,
        e: randomBytes(32).toString('hex'),
        d: key.publicKey,
      });
    },
    /** Host ids the account has now (a new install's host is the one not among them). */
    async hostIds() {
      const listed = await client.call('hosts.list', {}, { accessToken: await accessToken() });
      return new Set(listed.hosts.map((host) => host.host_id));
    },
    /** When a host not in `known` first showed online after `since`; waits up to `timeoutMs`. */
    firstOnline(known, since, timeoutMs = 120_000) {
      const find = () => changes.find((change) => change.at >= since && change.online && !known.has(change.host_id));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no new host came online on the relay')), timeoutMs);
        const check = () => {
          const found = find();
          if (!found) return;
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(check), 1);
          resolve(found);
        };
        waiters.push(check);
        check();
      });
    },
    /**
     * After `from`: how long `hostId` showed offline before it showed online again, once it has
     * (undefined if the device never saw it go offline within `timeoutMs`).
     */
    offlineGap(hostId, from, timeoutMs = 60_000) {
      const find = () => {
        const mine = changes.filter((change) => change.host_id === hostId && change.at >= from);
        const off = mine.find((change) => !change.online);
        const back = off && mine.find((change) => change.at >= off.at && change.online);
        return back ? back.at - off.at : undefined;
      };
      return new Promise((resolve) => {
        const timer = setTimeout(() => done(undefined), timeoutMs);
        const check = () => {
          const gap = find();
          if (gap !== undefined) done(gap);
        };
        const done = (gap) => {
          clearTimeout(timer);
          const at = waiters.indexOf(check);
          if (at >= 0) waiters.splice(at, 1);
          resolve(gap);
        };
        waiters.push(check);
        check();
      });
    },
    async stop() {
      device.dispose();
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}
