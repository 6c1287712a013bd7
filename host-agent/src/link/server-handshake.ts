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
  useTransportFeatures,
  loadCpace,
  type FrameTransport,
  type HostInfo,
  type LinkHello,
  type PakePassword,
  type TranscriptFields,
} from '@hangar/shared';
import { randomBytes, randomInt } from 'node:crypto';
import { verifyEd25519 } from '../identity/keys.js';
import { consumeFirstLinkAndPair, findFirstLink, isRevoked } from '../relay/relay-store.js';
import type { AgentStore } from '../store/db.js';
import { consumeCodeAndPair, findPairedDevice, recordFailedAttempt, touchPairedDevice } from '../store/pairing.js';
import { MAX_FAILED_ATTEMPTS, selectPairingCode } from './pairing.js';
import type { TokenBucket } from './rate-limit.js';
import { codeNotAccepted, enrollmentNotAccepted, notPaired, rateLimited, staleCode } from './refusals.js';

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
export interface HandshakeDevice {
  public_key: string;
  name: string;
  /** How this link was let in: a device pinned before, or pinned just now by a code or an enrollment. */
  via: 'pinned' | 'code' | 'enrollment';
}

export async function serverHandshake(ctx: ServerHandshakeContext): Promise<HandshakeDevice> {
  const reader = handshakeReader(
    ctx.transport,
    (reason) => new HangarError('E_PROTOCOL', `device left during the handshake: ${reason.message}`),
  );
  try {
    const hello = expectMessage(await reader.next(), 'link.hello');
    if (hello.mode === 'auth' && hello.enrollment !== undefined) {
      throw new HangarError('E_PROTOCOL', 'link.hello: enrollment belongs to pair mode only');
    }
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

/**
 * The agent's challenge: its key, a fresh nonce, when pairing its CPace share, and which of the
 * transport features the hello offered it uses from now on.
 */
function sendChallenge(
  ctx: ServerHandshakeContext,
  hello: LinkHello,
  serverNonce: Uint8Array,
  share?: Uint8Array,
): void {
  const features = useTransportFeatures(ctx.transport, hello.transport_features);
  ctx.transport.send(
    encodeLinkMessage({
      schema_version: SCHEMA_VERSION,
      kind: 'link.challenge',
      agent_key: toHex(ctx.agentKey.publicKey),
      nonce: toHex(serverNonce),
      ...(share !== undefined ? { share: toHex(share) } : {}),
      ...(features.length > 0 ? { transport_features: features } : {}),
    }),
  );
}

async function authenticate(ctx: ServerHandshakeContext, hello: LinkHello, next: Next) {
  const serverNonce = randomNonce();
  sendChallenge(ctx, hello, serverNonce);
  const proof = expectMessage(await next(), 'link.proof');
  const transcript = transcriptHash(baseTranscript(ctx, hello, serverNonce));
  const device = findPairedDevice(ctx.store, hello.device_key);
  if (device === undefined) throw notPaired();
  checkSignature(hello, transcript, proof.signature);
  touchPairedDevice(ctx.store, device.public_key, ctx.now());
  sendWelcome(ctx, transcript);
  return { public_key: device.public_key, name: device.name, via: 'pinned' as const };
}

/**
 * What keys a pairing and what becomes of it: a pairing code, or an enrollment's first link.
 * Either way the agent commits to a password before the device speaks (CPace), and a peer that
 * fails learns only that it failed.
 */
interface PairingSecret {
  password: PakePassword;
  /** The PAKE failed: count it, and the refusal to send. */
  wrongGuess(): HangarError;
  /** The PAKE succeeded: why it still cannot pair, if it cannot (only now may the peer know). */
  unusable(): HangarError | undefined;
  /** Spends the secret and pins the device, atomically; the refusal if another link won the race. */
  consume(device: { public_key: string; name: string }): HangarError | undefined;
}

function codeSecret(ctx: ServerHandshakeContext): PairingSecret {
  const selected = selectPairingCode(ctx.store, ctx.now());
  return {
    // With no code to commit to, commit to a random one: the exchange then looks the same to a
    // peer as a wrong guess, so it cannot learn whether a code is active.
    password: selected?.row.code ?? String(randomInt(0, 1_000_000)).padStart(6, '0'),
    wrongGuess: () => {
      if (selected?.state === 'active') recordFailedAttempt(ctx.store, selected.row.id, ctx.now(), MAX_FAILED_ATTEMPTS);
      return codeNotAccepted();
    },
    // The device has shown it knows the code: from here it may learn what became of the code.
    unusable: () =>
      selected === undefined ? codeNotAccepted() : selected.state !== 'active' ? staleCode(selected.state) : undefined,
    consume: (device) =>
      consumeCodeAndPair(ctx.store, selected!.row.id, device, ctx.now())
        ? undefined
        : // Another device used the code (or it expired) while this handshake ran.
          staleCode(selectPairingCode(ctx.store, ctx.now())?.state ?? 'used'),
  };
}

/**
 * The first link an enrollment token promised (relay/PROTOCOL.md step 4): keyed by the token's
 * end-to-end secret, for the device that made the token only, once, within 7 days. Whatever is
 * wrong (unknown, used or expired token, another device, a revoked one, a wrong secret), the
 * agent commits to a random secret and the peer gets the one generic refusal. The secret has
 * 256 bits, so wrong guesses burn nothing: a relay, which knows token ids, cannot spend one.
 */
function enrollmentSecret(ctx: ServerHandshakeContext, hello: LinkHello, tokenId: string): PairingSecret {
  const row = findFirstLink(ctx.store, tokenId);
  const usable =
    row !== undefined &&
    row.e2e_secret !== null &&
    row.used_at === null &&
    row.expires_at > ctx.now() &&
    row.device_key === hello.device_key &&
    !isRevoked(ctx.store, hello.device_key);
  return {
    password: { tokenId, secret: usable ? row.e2e_secret! : randomBytes(32).toString('hex') },
    wrongGuess: enrollmentNotAccepted,
    unusable: () => (usable ? undefined : enrollmentNotAccepted()),
    consume: (device) =>
      consumeFirstLinkAndPair(ctx.store, tokenId, device, ctx.now()) ? undefined : enrollmentNotAccepted(),
  };
}

async function pair(ctx: ServerHandshakeContext, hello: LinkHello, next: Next) {
  const allowed = ctx.takePairingAttempt();
  if (!allowed.ok) throw rateLimited(allowed.retryAfterMs);
  const pairing = hello.enrollment === undefined ? codeSecret(ctx) : enrollmentSecret(ctx, hello, hello.enrollment);
  const serverNonce = randomNonce();
  const fields = baseTranscript(ctx, hello, serverNonce);
  const { cpaceStart, cpaceIsk } = await loadCpace();
  const secret = cpaceStart(pairing.password, {
    clientNonce: fields.clientNonce,
    serverNonce,
    deviceKey: fields.deviceKey,
    agentKey: fields.agentKey,
  });
  sendChallenge(ctx, hello, serverNonce, secret.share);
  const proof = expectMessage(await next(), 'link.proof');
  if (proof.share === undefined || proof.mac === undefined) {
    throw new HangarError('E_PROTOCOL', 'a pairing proof needs the PAKE share and MAC');
  }
  const transcript = transcriptHash({ ...fields, deviceShare: fromHex(proof.share), agentShare: secret.share });
  const isk = cpaceIsk(secret, fromHex(proof.share), transcript);
  if (isk === undefined || !bytesEqual(fromHex(proof.mac), confirmationMac(isk, 'device', transcript))) {
    throw pairing.wrongGuess();
  }
  checkSignature(hello, transcript, proof.signature);
  const unusable = pairing.unusable();
  if (unusable !== undefined) throw unusable;
  const device = { public_key: hello.device_key, name: hello.device_name };
  const lost = pairing.consume(device);
  if (lost !== undefined) throw lost;
  sendWelcome(ctx, transcript, confirmationMac(isk, 'agent', transcript));
  return { ...device, via: hello.enrollment === undefined ? ('code' as const) : ('enrollment' as const) };
}
