import { z } from 'zod';

/**
 * The relay's ids and scalars, shared by relay.ts (accounts, hosts, sockets) and billing.ts
 * (plans, usage, entitlements) so that neither imports the other. relay.ts re-exports them:
 * import them from either.
 */

export const hexBytes = (bytes: number, what: string) =>
  z
    .string()
    .length(bytes * 2, `${what} must be ${bytes} bytes of lowercase hex`)
    .regex(/^[0-9a-f]+$/, `${what} must be lowercase hex`);
const id = (prefix: string, what: string) =>
  z.string().regex(new RegExp(`^${prefix}_[0-9a-f]{32}$`), `expected ${what} id (${prefix}_ and 32 hex digits)`);

export const AccountId = id('acct', 'an account');
export const DeviceId = id('dev', 'a device');
export const HostId = id('host', 'a host');
export const EnrollTokenId = id('tok', 'an enrollment token');
/** Milliseconds since the epoch. */
export const EpochMs = z.number().int().nonnegative().max(8.64e15);

/** Lowercase on the client before signing, so the bytes signed are the bytes the relay checks. */
export const Email = z
  .email({ error: 'expected an email address, e.g. me@example.com' })
  .max(254)
  .refine((value) => value === value.toLowerCase(), { error: 'email must be lowercase (clients lowercase it)' });
