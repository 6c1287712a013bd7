import { HangarError, type ErrorShape } from '@hangar/shared';

export interface RefusalContext {
  /** The user's name for the host ("mini"), or a placeholder when pairing a new one. */
  name: string;
  address: string;
}

const NEW_CODE = 'run `hangar-agent pair` on the host for a new code';

/**
 * Turns the agent's `link.refused` into what this device tells its user. The agent says as
 * little as it can to a peer that has not authenticated (host-agent's link/refusals.ts), so the
 * helpful part is made here, from the code and what this device knows: the host's name and
 * address, and that it was pairing with a code the user typed. Its text is not shown as is either:
 * before the handshake nothing the host sent is authenticated.
 */
export function describeRefusal(
  refusal: ErrorShape,
  mode: 'pair' | 'auth' | 'enroll',
  host: RefusalContext,
): HangarError {
  const where = `host "${host.name}" at ${host.address}`;
  if (mode === 'enroll' && refusal.code === 'E_AUTH_BAD_CODE') {
    return new HangarError(
      'E_AUTH_BAD_CODE',
      `${where} did not accept this device's enrollment token: it was already used, expired (first links are ` +
        'good for 7 days), was made by another device, or was never enrolled on that host. Make a new token with ' +
        '`hangar hosts enroll-token` and run `hangar-agent enroll` on the host again. If the token is new and was ' +
        'enrolled on that host, something between (the relay, or the network) may be pointing this device at another ' +
        'machine',
    );
  }
  switch (refusal.code) {
    case 'E_AUTH_BAD_CODE':
      return new HangarError(
        'E_AUTH_BAD_CODE',
        `${where} did not accept the pairing code: it does not match the code \`hangar-agent pair\` printed there last ` +
          `(codes last 10 minutes, work once, and stop working after 5 wrong tries). Check it, or ${NEW_CODE}. ` +
          'If the code is right and new, something between this device and the host may be intercepting the connection',
      );
    case 'E_AUTH_CODE_USED':
      return new HangarError('E_AUTH_CODE_USED', `this pairing code was already used; ${NEW_CODE}`);
    case 'E_AUTH_CODE_EXPIRED':
      return new HangarError('E_AUTH_CODE_EXPIRED', `this pairing code expired (codes last 10 minutes); ${NEW_CODE}`);
    case 'E_AUTH_RATE_LIMITED': {
      const wait = refusal.details?.['retry_after_ms'];
      if (typeof wait === 'number') {
        return new HangarError(
          'E_AUTH_RATE_LIMITED',
          `${where} refused: too many pairing attempts from this address; wait ${Math.ceil(wait / 1000)}s and try again`,
          { retry_after_ms: wait },
        );
      }
      return new HangarError(
        'E_AUTH_RATE_LIMITED',
        `this pairing code had too many wrong guesses, so it no longer works; ${NEW_CODE}`,
      );
    }
    case 'E_AUTH_UNKNOWN_DEVICE':
      return new HangarError(
        'E_AUTH_UNKNOWN_DEVICE',
        `this device is not paired with ${where} (it was never paired there, or was removed); to pair again, ` +
          `run \`hangar-agent pair\` on the host, then: hangar hosts rm ${host.name} && hangar hosts add ${host.name} ${host.address} --code <code>`,
      );
    case 'E_AUTH_BAD_SIGNATURE':
      return new HangarError(
        'E_AUTH_BAD_SIGNATURE',
        `${where} could not verify this device's signature over the handshake; the connection may have been tampered with`,
      );
    default:
      return new HangarError(
        refusal.code,
        `${where} refused the ${mode === 'auth' ? 'connection' : 'pairing'} (${refusal.code}): ${refusal.message.slice(0, 300)}`,
      );
  }
}
