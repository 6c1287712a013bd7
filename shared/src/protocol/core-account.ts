import { z } from 'zod';
import { AccountMember, BillingStatus, InviteToken, PaidPlanId } from './billing.js';
import { HostName } from './hosts.js';
import {
  AccountId,
  DeviceId,
  DeviceName,
  DeviceStatus,
  Email,
  EnrollTokenId,
  EpochMs,
  HostId,
  InviteView,
  Password,
} from './relay.js';

/**
 * The core API's calls about the account on a relay (relay/PROTOCOL.md): signing in and out, the
 * line that enrolls a host, and the account's devices. Part of CORE_PROCEDURES (core-api.ts); the
 * core talks to the relay, clients only to the core.
 */

const Empty = z.object({}).strict();

/** A relay's URL as a user types it: http(s)://host[:port][/prefix]; no credentials, query or fragment. */
export const RelayUrl = z
  .string()
  .trim()
  .max(2048)
  .refine((url) => /^https?:\/\/[^/?#@\s]+(\/[^?#\s]*)?$/i.test(url), {
    error: 'expected the relay URL, http(s)://host[:port], e.g. https://relay.example.com',
  });

/** An email as typed; lowercased here, since the relay checks proofs signed over the lowercase form. */
export const AccountEmail = z.string().trim().toLowerCase().pipe(Email);

/** An approval code as shown (8 groups of 4, like a fingerprint), or as a user types it. */
export const ApprovalCode = z
  .string()
  .max(100)
  .regex(
    /^[A-Za-z2-7\s-]+$/,
    'expected the code the new computer shows, like ABCD-EFGH-… (letters A-Z and digits 2-7)',
  );

/** A device of the account by its name or id (`dev_…`), as `hangar devices ls` shows them. */
export const DeviceRef = z.string().min(1).max(64);

export const ThisDevice = z.object({
  device_id: DeviceId,
  name: DeviceName,
  /** The relay's record (`first`, `pending`, `endorsed`, `revoked`); hosts decide for themselves. */
  status: DeviceStatus,
  fingerprint: z.string(),
  /** While pending: the code the user types on a trusted computer to approve this one. */
  approval_code: z.string().nullable(),
  /**
   * Where this computer's account hosts' keys come from: `bundle` (handed over by the computer that
   * approved it, sealed with the code), `relay` (approved without a code: the relay's word), null
   * (the account's first computer, or one waiting: it pins the hosts it enrolls itself).
   */
  host_keys_from: z.enum(['bundle', 'relay']).nullable(),
});

export const AccountStatus = z.object({
  account: z
    .object({
      relay_url: z.string(),
      email: Email,
      account_id: AccountId,
      signed_in_at: EpochMs,
      device: ThisDevice,
    })
    .nullable(),
  /**
   * The relay as this core sees it: `connected` (a window's core keeps a socket to it), `connecting`,
   * `reachable` (its last call answered), `unreachable`, or `unknown` (not asked yet; signed out).
   */
  relay: z.enum(['connected', 'connecting', 'reachable', 'unreachable', 'unknown']),
  /** Why it is unreachable, in words. */
  error: z.string().nullable(),
});
export type AccountStatus = z.infer<typeof AccountStatus>;

const Signer = z.object({ name: z.string(), fingerprint: z.string() }).nullable();

export const DeviceEntry = z.object({
  device_id: DeviceId,
  name: DeviceName,
  status: DeviceStatus,
  fingerprint: z.string(),
  created_at: EpochMs,
  last_seen: EpochMs.nullable(),
  this_device: z.boolean(),
  /** The device whose signed statement approved it: its name in the account (or "unknown device") and fingerprint. */
  approved_by: Signer,
  revoked_by: Signer,
  /** Approved before, refused by hosts now (its approver was revoked): why, and what to do. */
  needs_approval_again: z.string().optional(),
  /** Whose it is in a Team account: a member's email, null for the owner's (absent from older relays). */
  member_email: Email.nullable().optional(),
});
export type DeviceEntry = z.infer<typeof DeviceEntry>;

const SignIn = z.object({
  relay_url: RelayUrl,
  email: AccountEmail,
  password: Password,
  /** What the account calls this computer; default: its host name. */
  device_name: DeviceName.optional(),
});

export const ACCOUNT_PROCEDURES = {
  /** Makes an account on the relay; this computer's key becomes its first (trusted) device. */
  'account.signup': { params: SignIn, result: AccountStatus },
  /** Signs in; a key the account has not seen joins as `pending` until a trusted device approves it. */
  'account.login': { params: SignIn, result: AccountStatus },
  /**
   * Joins a Team account with the owner's invitation and a new password of the person's own
   * (relay `account.accept_invite`); this computer's key joins as `pending`, like a login's.
   */
  'account.join': { params: SignIn.extend({ invite_token: InviteToken }), result: AccountStatus },
  /** Ends this login at the relay (when it answers) and forgets it here, with the enrollment secrets kept for it. */
  'account.logout': { params: Empty, result: z.object({ relay_told: z.boolean() }) },
  'account.status': { params: Empty, result: AccountStatus },
  /**
   * A line to run on a host (valid 15 minutes, once) that enrolls it in the account under `name`.
   * Its end-to-end secret stays in this core until the first link pinned the host.
   */
  'hosts.enroll_token': {
    params: z.object({ name: HostName }),
    result: z.object({
      name: HostName,
      token_id: EnrollTokenId,
      expires_at: EpochMs,
      /** The `hgr1_…` token alone (for `hangar-agent enroll --token -`). */
      token: z.string(),
      /** The whole command to paste on a host where hangar-agent is installed. */
      command: z.string(),
      /** The line for a host without the agent: installs it as a service and enrolls it (the relay serves the script). */
      install_command: z.string(),
    }),
  },
  /** The account's plan, trial, build minutes this period (per day too) and next invoice, from the relay. */
  'account.billing': { params: Empty, result: BillingStatus },
  /** A Stripe Checkout page that buys `plan` (the account's owner only); the client opens it in a browser. */
  'account.checkout': { params: z.object({ plan: PaidPlanId }), result: z.object({ url: z.url() }) },
  /** Stripe's customer portal for the account (change plan or card, cancel, invoices); the owner only. */
  'account.portal': { params: Empty, result: z.object({ url: z.url() }) },
  'devices.list': { params: Empty, result: z.object({ devices: z.array(DeviceEntry) }) },
  /**
   * Signs an endorsement of the device with this computer's key; hosts let it in once they verify
   * it. `code` is what the user typed from the new device's screen: the call is refused unless the
   * tag the new device gave the relay was made with it for the key the relay holds; then this
   * computer's hosts and trusted devices are sealed for the new one with it. `code: null`
   * (`--yes`, scripts): no check, no bundle; the new computer takes its hosts on the relay's word.
   */
  'devices.approve': {
    params: z.object({ device: DeviceRef, code: ApprovalCode.nullable() }),
    result: z.object({ device: DeviceEntry }),
  },
  /** Signs a revocation: hosts refuse the device from then on and close its open links. */
  'devices.revoke': { params: z.object({ device: DeviceRef }), result: z.object({ device: DeviceEntry }) },
  /** The account's people and (for its owner) the invitations waiting, from the relay. */
  'account.team': {
    params: Empty,
    result: z.object({ members: z.array(AccountMember), invites: z.array(InviteView).nullable() }),
  },
  /** The owner invites `email`: the token is theirs to hand over (the relay sends no mail). */
  'account.invite': {
    params: z.object({ email: Email }),
    result: z.object({
      email: Email,
      invite_token: InviteToken,
      expires_at: EpochMs,
      /** What the invited person runs to join (hangar team join with this relay, their email and the token). */
      join_command: z.string(),
    }),
  },
  /** The owner withdraws an invitation: its token is refused from then on. */
  'account.withdraw_invite': { params: z.object({ email: Email }), result: Empty },
  /**
   * The owner removes a member: this computer signs a revocation of each of their devices (hosts
   * refuse them from then on), the relay forgets the membership and ends their logins.
   */
  'account.remove_member': {
    params: z.object({ email: Email }),
    result: z.object({
      email: Email,
      /** Their devices now revoked: every host of the account refuses them. */
      revoked: z.array(z.object({ device_id: DeviceId, name: DeviceName })),
      /** Their devices never approved, deleted. */
      deleted: z.array(z.object({ device_id: DeviceId, name: DeviceName })),
    }),
  },
} as const;

export const ACCOUNT_EVENTS = {
  /** Signed in or out, this device's status changed, or the relay became reachable or not. */
  'account.changed': AccountStatus,
  /** A new device signed in to the account and waits for approval (sent to trusted devices only). */
  'device.pending': z.object({ device: DeviceEntry }),
} as const;

/** What the account's relay says of a host enrolled in it. */
export const AccountHostView = z.object({
  host_id: HostId,
  /** The name the host was enrolled under. */
  name: HostName,
  /**
   * `online`/`offline` as the relay says, or `relay_unreachable` while this core cannot reach the
   * relay (last_seen then holds the last word it had).
   */
  presence: z.enum(['online', 'offline', 'relay_unreachable']),
  last_seen: EpochMs.nullable(),
  enrolled_at: EpochMs,
  /** What the host published, signed by its key: direct addresses, then tailnet ones. */
  addresses: z.array(z.string()),
  tailnet: z.array(z.string()),
});
export type AccountHostView = z.infer<typeof AccountHostView>;
