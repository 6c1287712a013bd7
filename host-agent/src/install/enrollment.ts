import { HangarError } from '@hangar/shared';

/**
 * The seam the relay integration fills: `enroll({ dataDir, token })` registers this host's key
 * with the relay the token came from (and `hangar-agent enroll --token` calls the same), and
 * `relayLink(dataDir)` tells status and the update's health check whether the host shows online
 * there. Until that is built, `install --token` refuses before it changes anything rather than
 * install a host that silently never appears on the relay. A system install must call enroll as
 * the service user: it writes the data dir.
 */
export interface Enrollment {
  readonly available: boolean;
  enroll(input: { dataDir: string; token: string }): Promise<void>;
  /** undefined: not enrolled (or no relay integration), so there is nothing to wait for. */
  relayLink(dataDir: string): Promise<{ online: boolean; relay: string } | undefined>;
}

export const ENROLLMENT_NOT_BUILT = 'enrollment needs the relay integration (not built yet)';

export const enrollment: Enrollment = {
  available: false,
  enroll: () => Promise.reject(new HangarError('E_UNAVAILABLE', `${ENROLLMENT_NOT_BUILT}; install without --token`)),
  relayLink: () => Promise.resolve(undefined),
};

export function refuseTokenWithoutEnrollment(token: string | undefined, available = enrollment.available): void {
  if (token !== undefined && !available) {
    throw new HangarError(
      'E_UNAVAILABLE',
      `${ENROLLMENT_NOT_BUILT}. Nothing was changed. Install without --token, then pair from the app with ` +
        '`hangar-agent pair` (the install prints the exact command).',
    );
  }
}
