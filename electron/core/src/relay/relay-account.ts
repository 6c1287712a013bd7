import {
  Emitter,
  HangarError,
  RelayClient,
  RelaySession,
  approvalTag,
  deviceFingerprint,
  newApprovalCode,
  newEnrollLine,
  isHangarError,
  makeLoginProof,
  toHangarError,
  type AccountStatus,
  type DeviceStatus,
  type Disposable,
  type Ed25519Signer,
  type FetchLike,
  type RelayMethod,
  type RelayParams,
  type RelayResult,
  type SessionTokens,
} from '@hangar/shared';
import { iceLifetimeMs, iceServersFrom, type IceConfig, type RtcIceServer } from '@hangar/shared';
import type { Logger } from 'pino';
import { deviceSigner, type DeviceKey } from '../identity/device-key.js';
import { AccountStore, tokensOf, type StoredAccount } from './account-store.js';

/**
 * This computer's account on a relay: sign-up, sign-in and out, the session that renews itself,
 * and the line that enrolls a host (the account's devices: account-devices.ts). The relay only
 * carries what this computer signs; the device key never leaves it.
 */

/** An enrollment token lives 15 minutes at the relay; the host's first link, 7 days after enrolling. */
const SECRET_KEPT_MS = 15 * 60_000 + 7 * 24 * 3_600_000;
/** Spend the refresh token when the access token has less than this left (as RelaySession does). */
const REFRESH_MARGIN_MS = 60_000;
/** How long a core waits for another core's refresh before giving up. */
const REFRESH_WAIT_MS = 25_000;

export type RelayReach = AccountStatus['relay'];

export const NOT_SIGNED_IN =
  'this computer is not signed in to an account; run: hangar login --relay <url> --email <you@example.com> (or hangar signup)';

export interface RelayAccountOptions {
  store: AccountStore;
  deviceKey: DeviceKey;
  /** What the account calls this computer unless the user names it. */
  defaultDeviceName: string;
  logger: Logger;
  fetch?: FetchLike;
  now?: () => number;
}

export class RelayAccount implements Disposable {
  private session: { key: string; session: RelaySession } | undefined;
  private reach: { state: RelayReach; error: string | null } = { state: 'unknown', error: null };
  private readonly changedEmitter = new Emitter<void>();
  /** Signed in or out, this device's status changed, or the relay's reachability did. */
  readonly onChanged = this.changedEmitter.event;
  readonly signer: Ed25519Signer;
  private readonly now: () => number;

  constructor(private readonly options: RelayAccountOptions) {
    this.signer = deviceSigner(options.deviceKey.privateKey);
    this.now = options.now ?? Date.now;
  }

  get store(): AccountStore {
    return this.options.store;
  }

  get publicKey(): string {
    return this.options.deviceKey.publicKeyHex;
  }

  /** STUN/TURN servers with this device's short-lived TURN credentials, as the relay hands them out (none: host candidates only). */
  async iceServers(): Promise<RtcIceServer[]> {
    const cached = this.ice;
    let ice = cached && cached.usableUntil - performance.now() > 5 * 60_000 ? cached.ice : undefined;
    if (ice === undefined) {
      try {
        ice = (await this.call('turn.credentials', {}, { timeoutMs: 3_000 })).ice ?? undefined;
        this.ice = ice && { ice, usableUntil: performance.now() + iceLifetimeMs(ice, this.now()) };
      } catch (error) {
        // A relay without TURN, or one that is away: host and server-reflexive candidates only.
        this.options.logger.info({ err: toHangarError(error).message }, 'no TURN credentials from the relay');
        return [];
      }
    }
    return ice ? iceServersFrom(ice.urls, ice) : [];
  }

  /**
   * The last credentials, and until when they can be used by this process's monotonic clock: from
   * when the relay's reply came, as long as it says they last (iceLifetimeMs). Compared by the
   * relay's expires_at with this computer's clock, a computer minutes behind the relay's used them
   * past their end (coturn refuses them then) and one ahead asked for new ones at every dial.
   */
  private ice: { ice: IceConfig; usableUntil: number } | undefined;

  stored(): StoredAccount | undefined {
    return this.options.store.account();
  }

  status(): AccountStatus {
    const account = this.stored();
    if (account === undefined) return { account: null, relay: 'unknown', error: null };
    const trust = this.options.store.trust(account.account_id);
    return {
      account: {
        relay_url: account.relay_url,
        email: account.email,
        account_id: account.account_id,
        signed_in_at: account.signed_in_at,
        device: {
          device_id: account.device_id,
          name: account.device_name,
          status: account.device_status,
          fingerprint: deviceFingerprint(this.publicKey),
          approval_code: account.device_status === 'pending' ? (trust?.approval_code ?? null) : null,
          host_keys_from: trust?.host_trust ?? null,
        },
      },
      relay: this.reach.state,
      error: this.reach.error,
    };
  }

  /** The relay as seen by the last call or the device socket; fires onChanged when it changes. */
  setReach(state: RelayReach, error: string | null = null): void {
    if (this.reach.state === state && this.reach.error === error) return;
    this.reach = { state, error };
    this.changedEmitter.fire();
  }

  get reachState(): RelayReach {
    return this.reach.state;
  }

  async signUp(input: SignIn): Promise<AccountStatus> {
    return this.signIn('auth.signup', input);
  }

  async logIn(input: SignIn): Promise<AccountStatus> {
    return this.signIn('auth.login', input);
  }

  /** Joins a Team account with an invitation (relay `account.accept_invite`): pending, like a login. */
  async join(input: SignIn & { invite_token: string }): Promise<AccountStatus> {
    return this.signIn('account.accept_invite', input);
  }

  private async signIn(
    method: 'auth.signup' | 'auth.login' | 'account.accept_invite',
    given: SignIn & { invite_token?: string },
  ): Promise<AccountStatus> {
    // One spelling of the relay's URL, so the same relay is recognised (and the line carries it bare).
    const input = { ...given, relay_url: given.relay_url.replace(/\/+$/, '') };
    const current = this.stored();
    // Signing in again to the same account (a login the relay ended) replaces it; another account needs a logout.
    const again = current !== undefined && current.relay_url === input.relay_url && current.email === input.email;
    if (current !== undefined && !(again && method === 'auth.login')) {
      throw new HangarError(
        'E_EXISTS',
        `this computer is signed in as ${current.email} on ${current.relay_url}; run hangar logout first`,
      );
    }
    const client = this.client(input.relay_url);
    const proof = makeLoginProof(this.signer, { relayOrigin: client.origin, identity: input.email });
    const login = {
      email: input.email,
      password: input.password,
      device: { public_key: this.publicKey, name: input.device_name ?? this.options.defaultDeviceName },
      proof,
    };
    const result = await this.tracked(
      method === 'account.accept_invite'
        ? client.call(method, { ...login, invite_token: input.invite_token ?? '' })
        : client.call(method, login),
    );
    // The same account again: the new login replaces the old; its hosts and secrets stay.
    if (again) this.options.store.forgetLogin();
    this.options.store.signIn({
      relay_url: input.relay_url,
      account: result.account,
      device: result.device,
      tokens: result,
      now: this.now(),
    });
    this.session = undefined;
    if (result.device.status === 'pending') {
      try {
        await this.offerApprovalCode(result.account.account_id);
      } catch (error) {
        if (!relayLacks(error, 'devices.offer_tag')) throw error;
        // A relay older than approval codes: the one flow it has (approval without a code) takes the
        // hosts' keys on the relay's word, which is less safe. Refused, and the login not kept.
        await this.logOut();
        throw new HangarError(
          'E_PROTOCOL',
          `${error.message}. This computer was not signed in: it would wait for an approval code that relay ` +
            'cannot carry (relay/PROTOCOL.md "More devices: the approval code"), and approving it without one ' +
            "would take your hosts' keys on the relay's word",
          { relay_lacks: 'devices.offer_tag' },
        );
      }
    }
    this.changedEmitter.fire();
    return this.status();
  }

  /**
   * A computer that waits for approval makes its code (relay/PROTOCOL.md "More devices: the
   * approval code"): kept here, shown to the user, and only its tag given to the relay.
   */
  private async offerApprovalCode(accountId: string): Promise<void> {
    const code = newApprovalCode();
    this.options.store.keepApprovalCode(accountId, code, this.now());
    await this.call('devices.offer_tag', { tag: approvalTag(code, this.publicKey, accountId) });
  }

  /** Ends the login at the relay if it answers, and forgets it here either way. */
  async logOut(): Promise<{ relay_told: boolean }> {
    const account = this.stored();
    if (account === undefined) throw new HangarError('E_AUTH_REQUIRED', NOT_SIGNED_IN);
    let told = true;
    try {
      await this.client(account.relay_url).call(
        'auth.logout',
        { refresh_token: account.refresh_token },
        { timeoutMs: 5_000 },
      );
    } catch (error) {
      // Signed out here all the same; the relay ends the login's tokens within 30 days by itself.
      told = false;
      this.options.logger.info({ err: toHangarError(error) }, 'logout: the relay could not be told');
    }
    this.options.store.signOut();
    this.session = undefined;
    this.reach = { state: 'unknown', error: null };
    this.changedEmitter.fire();
    return { relay_told: told };
  }

  /** A relay call as this signed-in device; failures to reach the relay mark it unreachable. */
  async call<M extends RelayMethod>(
    method: M,
    params: RelayParams<M>,
    options: { timeoutMs?: number } = {},
  ): Promise<RelayResult<M>> {
    try {
      return await this.tracked(this.requireSession().call(method, params, options));
    } catch (error) {
      // The relay says this device was revoked (any call but an endorsement, where it names the
      // device endorsed): hangar account then says so, not the trust it had.
      if (isHangarError(error) && error.code === 'E_AUTH_DEVICE_REVOKED' && method !== 'devices.endorse') {
        this.noteOwnStatus('revoked');
      }
      throw error;
    }
  }

  /** A RelaySession over the stored tokens: it refreshes by itself, coordinated with the other cores. */
  requireSession(): RelaySession {
    const account = this.stored();
    if (account === undefined) throw new HangarError('E_AUTH_REQUIRED', NOT_SIGNED_IN);
    const key = `${account.relay_url} ${account.account_id} ${account.device_id} ${account.signed_in_at}`;
    if (this.session?.key !== key) {
      const client = this.client(account.relay_url);
      const session = new RelaySession(client, tokensOf(account), {
        now: this.now,
        exchange: (current) => this.exchange(client, current),
      });
      this.session = { key, session };
    }
    return this.session.session;
  }

  /**
   * Gets fresh tokens: takes the ones another core already got, or spends the refresh token under
   * the database's lease so that no two cores ever present the same one.
   */
  private async exchange(client: RelayClient, current: SessionTokens): Promise<SessionTokens> {
    const store = this.options.store;
    const deadline = this.now() + REFRESH_WAIT_MS;
    for (;;) {
      const stored = store.tokens();
      if (stored === undefined) throw new HangarError('E_AUTH_REQUIRED', NOT_SIGNED_IN);
      if (stored.refresh_token !== current.refresh_token && stored.access_expires_at - this.now() > REFRESH_MARGIN_MS) {
        return stored;
      }
      const spend = stored.refresh_token;
      if (store.takeRefreshLease(spend, this.now())) {
        try {
          const fresh = await client.call('auth.refresh', { refresh_token: spend });
          store.saveRefreshed(spend, fresh);
          return fresh;
        } catch (error) {
          store.releaseRefreshLease(spend);
          throw explainRefresh(error);
        }
      }
      if (this.now() > deadline) {
        throw new HangarError(
          'E_TIMEOUT',
          'another Hangar process has been renewing the relay login for 25 s; try again',
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Makes the line for `hangar-agent enroll`: the relay's part, and an end-to-end secret kept here. */
  async enrollToken(name: string): Promise<{ token_id: string; expires_at: number; token: string; relay_url: string }> {
    const account = this.stored();
    if (account === undefined) throw new HangarError('E_AUTH_REQUIRED', NOT_SIGNED_IN);
    const made = await this.call('hosts.enroll_token', { name });
    const { line: token, secret } = newEnrollLine(account.relay_url, made, this.publicKey);
    this.options.store.keepSecret({
      token_id: made.token_id,
      account_id: account.account_id,
      host_name: name,
      secret,
      created_at: this.now(),
      expires_at: this.now() + SECRET_KEPT_MS,
    });
    return { token_id: made.token_id, expires_at: made.expires_at, token, relay_url: account.relay_url };
  }

  /** The device keys this computer trusts: its own, then those its approver handed it. */
  trustedDeviceKeys(): string[] {
    const account = this.stored();
    const handed = account ? this.options.store.trustedKeys(account.account_id, 'device').map((k) => k.key) : [];
    return [this.publicKey, ...handed.filter((key) => key !== this.publicKey)];
  }

  /** This device's status as the relay records it (pending until a trusted device approves it). */
  noteOwnStatus(status: DeviceStatus): void {
    const account = this.stored();
    if (account === undefined || account.device_status === status) return;
    this.options.store.setDeviceStatus(status);
    this.changedEmitter.fire();
  }

  private client(url: string): RelayClient {
    return new RelayClient({ url, ...(this.options.fetch ? { fetch: this.options.fetch } : {}) });
  }

  /** Notes whether the relay answered (a window's socket, when it has one, says it better). */
  private async tracked<T>(call: Promise<T>): Promise<T> {
    try {
      const result = await call;
      if (this.reach.state !== 'connected' && this.reach.state !== 'connecting') this.setReach('reachable');
      return result;
    } catch (error) {
      if (isHangarError(error) && (error.code === 'E_UNAVAILABLE' || error.code === 'E_TIMEOUT')) {
        this.setReach('unreachable', error.message);
      }
      throw error;
    }
  }

  dispose(): void {
    this.changedEmitter.dispose();
  }
}

/** The relay answered that it has no such procedure: it is older than this client (relay-client.ts). */
function relayLacks(error: unknown, method: string): error is HangarError {
  return isHangarError(error) && error.details?.['relay_lacks'] === method;
}

export interface SignIn {
  relay_url: string;
  email: string;
  password: string;
  device_name?: string | undefined;
}

function explainRefresh(error: unknown): unknown {
  if (!isHangarError(error)) return error;
  if (['E_AUTH_REFRESH_REUSED', 'E_TOKEN_INVALID', 'E_AUTH_EXPIRED', 'E_AUTH_BAD_CREDENTIALS'].includes(error.code)) {
    return new HangarError(
      'E_AUTH_REQUIRED',
      `the relay ended this computer's login (${error.message}); sign in again: hangar login --relay <url> --email <you@example.com>`,
    );
  }
  return error;
}
