import {
  HangarError,
  SCHEMA_VERSION,
  bytesEqual,
  confirmationMac,
  encodeLinkMessage,
  expectMessage,
  fingerprintToBytes,
  fromHex,
  handshakeReader,
  randomNonce,
  signaturePayload,
  toHex,
  transcriptHash,
  loadCpace,
  type FrameTransport,
  type HostInfo,
  type LinkHello,
  type TranscriptFields,
} from '@hangar/shared';
import { randomInt } from 'node:crypto';
import { verifyEd25519 } from '../identity/keys.js';
import type { AgentStore } from '../store/db.js';
import { consumeCodeAndPair, findPairedDevice, recordFailedAttempt, touchPairedDevice } from '../store/pairing.js';
import { MAX_FAILED_ATTEMPTS, selectPairingCode } from './pairing.js';
import type { TokenBucket } from './rate-limit.js';
import { codeNotAccepted, notPaired, rateLimited, staleCode } from './refusals.js';

export interface ServerHandshakeContext {
  transport: FrameTransport;
  /** TLS exporter of this connection (RFC 5705 / RFC 8446 §7.5). */
  exporter: Uint8Array;
  certFingerprint: string;
  agentKey: { publicKey: Uint8Array; sign(message: Uint8Array): Uint8Array };
  store: AgentStore;
  hostInfo: () => HostInfo;
  now: () => number;
  /** A pairing attempt from this connection's source, or how long it must wait for one. */
  takePairingAttempt: () => ReturnType<TokenBucket['take']>;
}

/**
 * Runs the agent's side of the handshake (message sequence in shared/src/protocol/link.ts).
 * Resolves with the authenticated device, or throws the HangarError to send as `link.refused`.
 * Nothing is written to the store unless every check passed (wrong-guess counters aside).
 * Refusals tell a peer nothing it did not know (refusals.ts): not this host's name, not whether
 * a pairing code is active, not how many guesses remain.
 */
export async function serverHandshake(ctx: ServerHandshakeContext): Promise<{ public_key: string; name: string }> {
  const reader = handshakeReader(
    ctx.transport,
    (reason) => new HangarError('E_PROTOCOL', `device left during the handshake: ${reason.message}`),
  );
  try {
    const hello = expectMessage(await reader.next(), 'link.hello');
    return hello.mode === 'pair' ? await pair(ctx, hello, reader.next) : await authenticate(ctx, hello, reader.next);
  } finally {
    reader.dispose();
  }
}

type Next = () => ReturnType<ReturnType<typeof handshakeReader>['next']>;

function baseTranscript(ctx: ServerHandshakeContext, hello: LinkHello, serverNonce: Uint8Array): TranscriptFields {
  return {
    mode: hello.mode,
    exporter: ctx.exporter,
    clientNonce: fromHex(hello.nonce),
    serverNonce,
    deviceKey: fromHex(hello.device_key),
    deviceName: hello.device_name,
    agentKey: ctx.agentKey.publicKey,
    certFingerprint: fingerprintToBytes(ctx.certFingerprint),
  };
}

function sendWelcome(ctx: ServerHandshakeContext, transcript: Uint8Array, mac?: Uint8Array): void {
  const hostInfo = JSON.stringify(ctx.hostInfo());
  const signature = ctx.agentKey.sign(signaturePayload('agent', transcript, hostInfo));
  ctx.transport.send(
    encodeLinkMessage({
      schema_version: SCHEMA_VERSION,
      kind: 'link.welcome',
      signature: toHex(signature),
      ...(mac ? { mac: toHex(mac) } : {}),
      host_info: hostInfo,
    }),
  );
}

function checkSignature(hello: LinkHello, transcript: Uint8Array, signatureHex: string): void {
  if (!verifyEd25519(fromHex(hello.device_key), signaturePayload('device', transcript), fromHex(signatureHex))) {
    throw new HangarError(
      'E_AUTH_BAD_SIGNATURE',
      'the device signature over the handshake is not valid; the connection may have been tampered with',
    );
  }
}

async function authenticate(ctx: ServerHandshakeContext, hello: LinkHello, next: Next) {
  const serverNonce = randomNonce();
  ctx.transport.send(
    encodeLinkMessage({
      schema_version: SCHEMA_VERSION,
      kind: 'link.challenge',
      agent_key: toHex(ctx.agentKey.publicKey),
      nonce: toHex(serverNonce),
    }),
  );
  const proof = expectMessage(await next(), 'link.proof');
  const transcript = transcriptHash(baseTranscript(ctx, hello, serverNonce));
  const device = findPairedDevice(ctx.store, hello.device_key);
  if (device === undefined) throw notPaired();
  checkSignature(hello, transcript, proof.signature);
  touchPairedDevice(ctx.store, device.public_key, ctx.now());
  sendWelcome(ctx, transcript);
  return { public_key: device.public_key, name: device.name };
}

async function pair(ctx: ServerHandshakeContext, hello: LinkHello, next: Next) {
  const allowed = ctx.takePairingAttempt();
  if (!allowed.ok) throw rateLimited(allowed.retryAfterMs);
  const selected = selectPairingCode(ctx.store, ctx.now());
  // With no code to commit to, commit to a random one: the exchange then looks the same to a
  // peer as a wrong guess, so it cannot learn whether a code is active.
  const password = selected?.row.code ?? String(randomInt(0, 1_000_000)).padStart(6, '0');
  const serverNonce = randomNonce();
  const fields = baseTranscript(ctx, hello, serverNonce);
  const { cpaceStart, cpaceIsk } = await loadCpace();
  const secret = cpaceStart(password, {
    clientNonce: fields.clientNonce,
    serverNonce,
    deviceKey: fields.deviceKey,
    agentKey: fields.agentKey,
  });
  ctx.transport.send(
    encodeLinkMessage({
      schema_version: SCHEMA_VERSION,
      kind: 'link.challenge',
      agent_key: toHex(ctx.agentKey.publicKey),
      nonce: toHex(serverNonce),
      share: toHex(secret.share),
    }),
  );
  const proof = expectMessage(await next(), 'link.proof');
  if (proof.share === undefined || proof.mac === undefined) {
    throw new HangarError('E_PROTOCOL', 'a pairing proof needs the PAKE share and MAC');
  }
  const transcript = transcriptHash({ ...fields, deviceShare: fromHex(proof.share), agentShare: secret.share });
  const isk = cpaceIsk(secret, fromHex(proof.share), transcript);
  if (isk === undefined || !bytesEqual(fromHex(proof.mac), confirmationMac(isk, 'device', transcript))) {
    if (selected?.state === 'active') recordFailedAttempt(ctx.store, selected.row.id, ctx.now(), MAX_FAILED_ATTEMPTS);
    throw codeNotAccepted();
  }
  // The device has shown it knows the code: from here it may learn what became of the code.
  if (selected === undefined) throw codeNotAccepted(); // it guessed the random stand-in
  checkSignature(hello, transcript, proof.signature);
  if (selected.state !== 'active') throw staleCode(selected.state);
  const device = { public_key: hello.device_key, name: hello.device_name };
  if (!consumeCodeAndPair(ctx.store, selected.row.id, device, ctx.now())) {
    // Another device used the code (or it expired) while this handshake ran.
    throw staleCode(selectPairingCode(ctx.store, ctx.now())?.state ?? 'used');
  }
  sendWelcome(ctx, transcript, confirmationMac(isk, 'agent', transcript));
  return device;
}
