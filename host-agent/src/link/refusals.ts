import { HangarError } from '@hangar/shared';
import type { PairingCodeState } from './pairing.js';

/**
 * What the agent says to a peer it refuses during the handshake. Anyone who can reach the port
 * gets these, so they say nothing the peer did not already know: not the host's name, not
 * whether a pairing code is active, not how many wrong guesses are left. A device makes its
 * own, more helpful, message from the code and what it knows itself (electron/core's link/refusals.ts).
 */

const PAIR_HINT = 'run `hangar-agent pair` on the host for a new code';

/** Wrong code, no code active, or a stale code guessed wrong: one answer for all of them. */
export function codeNotAccepted(): HangarError {
  return new HangarError(
    'E_AUTH_BAD_CODE',
    `the pairing code was not accepted; check it, or ${PAIR_HINT} (codes last 10 minutes and work once)`,
  );
}

/**
 * A first link with an enrollment that did not work, whatever the reason: unknown, used or
 * expired token, another device than the one that made it, or a secret that did not match.
 */
export function enrollmentNotAccepted(): HangarError {
  return new HangarError(
    'E_AUTH_BAD_CODE',
    'the enrollment was not accepted; on your computer make a new token with `hangar hosts enroll-token`, ' +
      'and on the host run `hangar-agent enroll --token <it>` (tokens work once, for the device that made them)',
  );
}

/** Per source address: it tells the peer about its own attempts only. */
export function rateLimited(retryAfterMs: number): HangarError {
  return new HangarError(
    'E_AUTH_RATE_LIMITED',
    `too many pairing attempts from this address; wait ${Math.ceil(retryAfterMs / 1000)}s and try again`,
    { retry_after_ms: retryAfterMs },
  );
}

export function notPaired(): HangarError {
  return new HangarError(
    'E_AUTH_UNKNOWN_DEVICE',
    'this device is not paired with this host; run `hangar-agent pair` on the host and `hangar hosts add <name> <address> --code <code>` here',
  );
}

/** Only for a device that has proved it knows the code (the PAKE succeeded): it may know its fate. */
export function staleCode(state: PairingCodeState): HangarError {
  switch (state) {
    case 'used':
      return new HangarError('E_AUTH_CODE_USED', `this pairing code was already used; ${PAIR_HINT}`);
    case 'expired':
      return new HangarError('E_AUTH_CODE_EXPIRED', `this pairing code expired (codes last 10 minutes); ${PAIR_HINT}`);
    case 'burned':
      return new HangarError(
        'E_AUTH_RATE_LIMITED',
        `this pairing code had too many wrong guesses, so it no longer works; ${PAIR_HINT}`,
        { code_state: 'burned' },
      );
    case 'active':
      return new HangarError('E_INTERNAL', 'pairing code unexpectedly still active');
  }
}
