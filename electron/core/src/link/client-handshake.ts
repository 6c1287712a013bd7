import {
  HangarError,
  HostInfo,
  SCHEMA_VERSION,
  bytesEqual,
  confirmationMac,
  encodeLinkMessage,
  expectMessage,
  fingerprintToBytes,
  fromHex,
  handshakeReader,
  parseOrThrow,
  offeredTransportFeatures,
  randomNonce,
  signaturePayload,
  toHex,
  useTransportFeatures,
  transcriptHash,
  loadCpace,
  type Ed25519Signer,
  type FrameTransport,
  type LinkMessage,
  type TranscriptFields,
} from '@hangar/shared';
import { verifyEd25519 } from '../identity/device-key.js';
import { describeRefusal, type RefusalContext } from './refusals.js';

export interface ClientHandshakeInput {
  transport: FrameTransport;
  /** TLS exporter of this connection (RFC 5705 / RFC 8446 §7.5). */
  exporter: Uint8Array;
  /** fingerprint256 of the certificate this TLS session presented. */
  certFingerprint: string;
  device: Ed25519Signer;
  deviceName: string;
  /**
   * Auth mode: the pinned agent key. Pair mode: the pairing code, or an enrollment (the token id
   * and end-to-end secret of a token this device made) for its first link to an enrolled host.
   */
  mode:
    | { kind: 'auth'; agentKey: string; keyChanged: (seen: string) => HangarError }
    | { kind: 'pair'; code: string }
    | { kind: 'pair'; enrollment: { token_id: string; secret: string } };
  /** Names the host in the messages a refusal becomes. */
  host: RefusalContext;
}

/**
 * The device's side of the handshake (sequence in shared/src/protocol/link.ts). Resolves with
 * the agent key and host info once the agent has proved itself; throws a HangarError otherwise.
 */
export async function clientHandshake(input: ClientHandshakeInput): Promise<{ agentKey: string; host: HostInfo }> {
  const { transport } = input;
  const reader = handshakeReader(
    transport,
    (reason) =>
      new HangarError('E_PROTOCOL', `the host closed the connection during the handshake (${reason.message})`),
  );
  // A refusal becomes this device's own message; other messages must be the expected kind.
  const expectFromAgent = <K extends LinkMessage['kind']>(message: LinkMessage, kind: K) => {
    if (message.kind === 'link.refused') throw describeRefusal(message.error, refusalMode, input.host);
    return expectMessage(message, kind);
  };
  const { mode } = input;
  const enrollment = 'enrollment' in mode ? mode.enrollment : undefined;
  const refusalMode = enrollment ? 'enroll' : mode.kind;
  try {
    const clientNonce = randomNonce();
    const offered = offeredTransportFeatures(transport);
    transport.send(
      encodeLinkMessage({
        schema_version: SCHEMA_VERSION,
        kind: 'link.hello',
        mode: mode.kind,
        device_key: toHex(input.device.publicKey),
        device_name: input.deviceName,
        nonce: toHex(clientNonce),
        ...(enrollment ? { enrollment: enrollment.token_id } : {}),
        ...(offered ? { transport_features: offered } : {}),
      }),
    );
    const challenge = expectFromAgent(await reader.next(), 'link.challenge');
    useTransportFeatures(transport, challenge.transport_features);
    if (mode.kind === 'auth' && challenge.agent_key !== mode.agentKey.toLowerCase()) {
      throw mode.keyChanged(challenge.agent_key);
    }
    const fields: TranscriptFields = {
      mode: mode.kind,
      exporter: input.exporter,
      clientNonce,
      serverNonce: fromHex(challenge.nonce),
      deviceKey: input.device.publicKey,
      deviceName: input.deviceName,
      agentKey: fromHex(challenge.agent_key),
      certFingerprint: fingerprintToBytes(input.certFingerprint),
    };

    let transcript: Uint8Array;
    let isk: Uint8Array | undefined;
    if (mode.kind === 'pair') {
      if (challenge.share === undefined)
        throw new HangarError('E_PROTOCOL', 'the host did not start the pairing exchange');
      const { cpaceStart, cpaceIsk } = await loadCpace();
      const password =
        'code' in mode ? mode.code : { tokenId: mode.enrollment.token_id, secret: mode.enrollment.secret };
      const secret = cpaceStart(password, fields);
      const agentShare = fromHex(challenge.share);
      transcript = transcriptHash({ ...fields, deviceShare: secret.share, agentShare });
      isk = cpaceIsk(secret, agentShare, transcript);
      if (isk === undefined) throw new HangarError('E_PROTOCOL', 'the host sent an invalid pairing share');
      transport.send(
        encodeLinkMessage({
          schema_version: SCHEMA_VERSION,
          kind: 'link.proof',
          signature: toHex(input.device.sign(signaturePayload('device', transcript))),
          share: toHex(secret.share),
          mac: toHex(confirmationMac(isk, 'device', transcript)),
        }),
      );
    } else {
      transcript = transcriptHash(fields);
      transport.send(
        encodeLinkMessage({
          schema_version: SCHEMA_VERSION,
          kind: 'link.proof',
          signature: toHex(input.device.sign(signaturePayload('device', transcript))),
        }),
      );
    }

    const welcome = expectFromAgent(await reader.next(), 'link.welcome');
    if (
      isk !== undefined &&
      (welcome.mac === undefined || !bytesEqual(fromHex(welcome.mac), confirmationMac(isk, 'agent', transcript)))
    ) {
      throw new HangarError(
        'E_AUTH_BAD_SIGNATURE',
        'the host failed pairing key confirmation; the connection may have been tampered with',
      );
    }
    if (
      !verifyEd25519(
        fields.agentKey,
        signaturePayload('agent', transcript, welcome.host_info),
        fromHex(welcome.signature),
      )
    ) {
      throw new HangarError(
        'E_AUTH_BAD_SIGNATURE',
        "the host's signature over the handshake is not valid; the connection may have been tampered with",
      );
    }
    let hostJson: unknown;
    try {
      hostJson = JSON.parse(welcome.host_info);
    } catch {
      throw new HangarError('E_PROTOCOL', 'the host sent host_info that is not JSON');
    }
    return { agentKey: challenge.agent_key, host: parseOrThrow(HostInfo, hostJson, 'host info') };
  } finally {
    reader.dispose();
  }
}

/** `promise`, or an E_TIMEOUT saying `message` if it has not settled by `deadline` (epoch ms). */
export function withDeadline<T>(promise: Promise<T>, deadline: number, message: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new HangarError('E_TIMEOUT', message)), Math.max(0, deadline - Date.now()));
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
