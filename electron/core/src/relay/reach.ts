import type { KeyObject } from 'node:crypto';
import {
  HangarError,
  isHangarError,
  toHangarError,
  verifyPresence,
  type HostPresence,
  type HostRecord,
} from '@hangar/shared';
import type { Logger } from 'pino';
import type { HostEntry } from '../hosts/directory.js';
import type { HostRegistry } from '../hosts/registry.js';
import { connectToHost, type ConnectedHost } from '../link/connect.js';
import type { AccountHost } from './account-hosts.js';
import { answering } from './answering.js';
import { hostKeysFor, settleHostTrust, vouchFor, type HostKeysFrom } from './host-trust.js';
import { RaceFailed, raceDials, type RaceWay } from './dial-race.js';
import type { RelayAccount } from './relay-account.js';

/** A link, and the address it was made at. */
export interface Dialed extends ConnectedHost {
  address: string;
  /** How the link runs, when it is not a TLS connection to `address` (a fallback's): its kind and round trip. */
  path?: () => { kind: string; rtt_ms: number | null };
}

type How =
  { pinned: { agent_key: string; cert_fingerprint: string } } | { enrollment: { token_id: string; secret: string } };

/**
 * A way to reach an account host when none of the addresses it published answers: WebRTC through the
 * relay's signaling (relay/webrtc-reach.ts), then whatever comes after it in the list. Each gets the
 * host as the relay lists it and the pins (or the enrollment) to authenticate with; the link's own
 * handshake proves the host, as at an address.
 */
export interface ReachFallback {
  readonly name: string;
  dial(target: {
    name: string;
    host: HostPresence;
    how: How;
    /** Another way won the race: stop (and close what was opened). */
    signal?: AbortSignal;
    /** This way will very likely open, if slower than the head start (both ends got a TURN candidate): the next one waits for it to fail. */
    promising?: () => void;
  }): Promise<ConnectedHost & { path: Dialed['path'] }>;
}

/** A paired host's address that has not answered within this long: the account's word on it is asked for meanwhile. */
const ACCOUNT_LOOKUP_AFTER_MS = 1_000;

/**
 * Happy eyeballs: the fallbacks start when no address took a TCP connection within this long (or
 * every address failed sooner). An address that answers does so in milliseconds, and is then
 * linked with no fallback beside it; one that drops packets would otherwise hold the fallbacks back
 * for its 3 s.
 */
export const ADDRESSES_HEAD_START_MS = 750;

/**
 * The next fallback (the relay's splice after WebRTC) starts when the one before has not linked
 * within this long, or failed sooner, unless it is promising (WebRTC with a TURN candidate at both
 * ends: it links in a second or two and is the better path): then only once it failed. Where UDP
 * is blocked, ICE would take its 5 s to give up; the splice links meanwhile.
 */
export const FALLBACK_HEAD_START_MS = 1_500;

/** Stands for "the fallbacks" in the list of addresses an account host is dialed at. */
const VIA_FALLBACK = '(no published address answered)';

export interface HostReachDeps {
  registry: HostRegistry;
  account: RelayAccount;
  /** The merged host list (hosts/directory.ts); `fresh` asks the relay when this core has no socket. */
  entries: (fresh: boolean) => Promise<HostEntry[]>;
  deviceKey: KeyObject;
  deviceName: string;
  /** A host was saved to the registry (an enrolled host's first link): the host list changed. */
  saved: () => void;
  /** A window's core (it keeps running): it may vouch for paired hosts at the relay after a dial. */
  longLived?: () => boolean;
  /** Tried in order when no published address answers (the dial order's one hook). */
  fallbacks?: ReachFallback[];
  logger: Logger;
}

/**
 * How this computer links to a host by name. A paired host: at its address, with its pins; if
 * that address no longer answers and the host is in the account, at the addresses it published
 * since (signed by the key pinned here; the one that works is kept). A host only the account knows
 * (until the WebRTC link, at an address it published):
 * - this computer made its enrollment token: pair with the token's end-to-end secret, as a code
 *   pairs (relay/PROTOCOL.md "Enrolling a host"), then pin it and forget the secret;
 * - otherwise: the keys the relay lists, which the host accepts only once a device it trusts
 *   endorsed this one. A lying relay can show this computer a host that is not the user's; it
 *   cannot get this computer into a real host, nor anyone into it.
 */
export class HostReach {
  constructor(private readonly deps: HostReachDeps) {}

  async dial(name: string): Promise<Dialed> {
    const found = this.deps.registry.find(name);
    const entry = found ? undefined : (await this.deps.entries(true)).find((e) => e.name === name);
    const record = found ?? entry?.record;
    if (record) {
      const dialed = await this.pinned(record);
      void this.vouchIfUnsaid(record);
      return dialed;
    }
    if (!entry?.account) {
      this.refuseWhilePending(name);
      this.deps.registry.get(name); // throws E_HOST_NOT_FOUND with the known names
    }
    return this.enrolled(name, entry!.account!);
  }

  /**
   * A host this computer pinned (with a code, at a first link) that the account lists with the same
   * keys, and that this computer has not vouched for at the relay yet (paired before it enrolled, or
   * before host statements): vouched for now, so the account's other computers may take it
   * (relay/PROTOCOL.md "Hosts enrolled later"). From what this core already knows, and only in a
   * window's core (long-lived): a hangar command must not wait on the relay to exit.
   */
  private async vouchIfUnsaid(record: HostRecord): Promise<void> {
    if (!this.deps.longLived?.()) return;
    try {
      const account = (await this.deps.entries(false)).find((e) => e.record?.agent_key === record.agent_key)?.account;
      const host = account?.host;
      if (host === undefined || host.public_key !== record.agent_key) return;
      if (!sameCertificate(record.cert_fingerprint, host.cert_fingerprint)) return;
      if ((host.vouches ?? []).some((v) => v.signer_device_key === this.deps.account.publicKey)) return;
      // A key this computer took on the relay's word (approved with --yes) is not its to vouch for:
      // the relay's word would come back to the account's other computers as a trusted device's.
      const accountId = this.deps.account.stored()?.account_id;
      if (accountId === undefined) return;
      const relayWord = this.deps.account.store.trustedKeys(accountId, 'relay_host');
      if (relayWord.some((k) => k.key === record.agent_key)) return;
      await vouchFor(this.deps.account, host);
    } catch (error) {
      this.deps.logger.info(
        { host: record.name, err: toHangarError(error) },
        'could not vouch for the host at the relay',
      );
    }
  }

  /**
   * A device the account has not approved sees none of its hosts (the relay answers its host list
   * with E_FORBIDDEN): a name it does not know may well be one of them, so "no host named …; add
   * one" would send the user the wrong way.
   */
  private refuseWhilePending(name: string): void {
    const account = this.deps.account.stored();
    if (account?.device_status !== 'pending') return;
    throw new HangarError(
      'E_FORBIDDEN',
      `"${name}" is not paired with this computer, and this computer is waiting for approval on your account ` +
        `(${account.email}), so it sees none of the account's hosts yet: approve it from a trusted one with: ` +
        `hangar devices approve "${account.device_name}"`,
    );
  }

  /**
   * A better path than the one a live link to `name` runs on (`current`: its path kind, undefined
   * for TLS at an address), or undefined when none is better now. Tried, as the first dial does:
   * the pinned address and the addresses the host published (3 s at most), then WebRTC when the
   * link runs through the relay's splice (a `turn` link may become `p2p` too). The link that
   * comes back authenticated with the same pins as the live one; one no better is closed here.
   */
  async better(name: string, current: string | undefined): Promise<Dialed | undefined> {
    const rank = pathRank(current);
    if (rank === 0) return undefined;
    const record = this.deps.registry.find(name);
    if (!record || record.embedded) return undefined;
    const pinned = { agent_key: record.agent_key, cert_fingerprint: record.cert_fingerprint };
    const account = (await this.deps.entries(false)).find((e) => e.record?.agent_key === record.agent_key)?.account;
    const candidates = [record.address, ...(account ? publishedAddresses(account.host) : [])];
    for (const address of await answering(candidates)) {
      try {
        const dialed = await this.connect(name, address, { pinned });
        if (address !== record.address) this.deps.registry.updateAddress(name, address);
        return dialed;
      } catch (error) {
        // Another machine at an old address, or one that stopped answering meanwhile: go on.
        this.deps.logger.debug({ host: name, address, err: toHangarError(error) }, 'no better path at this address');
      }
    }
    if (!account) return undefined;
    for (const fallback of this.fallbacks) {
      if (fallback.name === 'relayed') continue;
      let connected: Awaited<ReturnType<ReachFallback['dial']>>;
      try {
        connected = await fallback.dial({ name, host: account.host, how: { pinned } });
      } catch (error) {
        this.deps.logger.debug({ host: name, via: fallback.name, err: toHangarError(error) }, 'no better path');
        continue;
      }
      if (pathRank(connected.path?.().kind) < rank) return { ...connected, address: record.address };
      connected.transport.close({ code: 'closed', message: 'no better than the path in use' });
    }
    return undefined;
  }

  /**
   * A paired host: its address (and, when that fails, the addresses it published since), raced
   * with the fallbacks, which start when no address linked within ADDRESSES_HEAD_START_MS.
   */
  private async pinned(record: HostRecord): Promise<Dialed> {
    const pinned = { agent_key: record.agent_key, cert_fingerprint: record.cert_fingerprint };
    // The account's word on the host (other addresses, the way to the fallbacks) is asked for when
    // its address has not answered within a second, not after its 3 s: with the relay down too, a
    // command says so within 5 s ("relay unreachable"), not after both waits one behind the other.
    let lookup: Promise<HostEntry[]> | undefined;
    const lookUp = () => (lookup ??= this.deps.entries(true));
    const early = setTimeout(() => void lookUp().catch(() => undefined), ACCOUNT_LOOKUP_AFTER_MS);
    const accountOf = async () => (await lookUp()).find((e) => e.record?.agent_key === record.agent_key)?.account;
    // An address that took the TCP connection is being linked: the fallbacks wait for its verdict.
    let answered = false;
    const withFallbacks = this.fallbacks.length > 0;
    // Another key met at the host's address: if no way links, the answer, whatever failed after it.
    let changedAtAddress: HangarError | undefined;
    const viaAddresses = async (): Promise<Dialed> => {
      try {
        // With fallbacks to go to, an address that drops packets costs 3 s, not the link's 15 s timeout.
        if (withFallbacks && !record.embedded && (await answering([record.address])).length === 0) {
          throw new HangarError('E_HOST_UNREACHABLE', `nothing answers at ${record.address}`);
        }
        answered = true;
        clearTimeout(early);
        return await this.connect(record.name, record.address, { pinned });
      } catch (error) {
        clearTimeout(early);
        const failure = toHangarError(error);
        // Another key at the address: with an account, it may be another machine now at that address
        // (a published 127.0.0.1 or LAN address seen from elsewhere), so the host's other ways are
        // tried with the same pins. If none links, this is the answer.
        if ((!transient(failure) && !(withFallbacks && keyChanged(failure))) || record.embedded) throw failure;
        if (keyChanged(failure)) changedAtAddress = failure;
        const account = await accountOf();
        const others = account ? publishedAddresses(account.host).filter((a) => a !== record.address) : [];
        const reachable = await answering(others);
        answered = reachable.length > 0;
        for (const address of reachable) {
          try {
            const dialed = await this.connect(record.name, address, { pinned });
            // Signed by the key pinned here, and the handshake proved it: this is where it is now.
            this.deps.registry.updateAddress(record.name, address);
            this.deps.logger.info({ host: record.name, address }, 'a paired host answered at an address it published');
            return dialed;
          } catch (next) {
            // Another machine at an old LAN address presents another key: not ours, go on.
            if (!transient(toHangarError(next)) && !keyChanged(toHangarError(next))) throw next;
          }
        }
        if (keyChanged(failure)) {
          this.deps.logger.warn(
            { host: record.name, address: record.address, err: failure.message },
            'the address a paired host was reached at presents another key: trying its other ways, with the same pins',
          );
        }
        throw failure;
      }
    };
    if (!withFallbacks || record.embedded) return viaAddresses();
    const notInAccount = new HangarError('E_HOST_UNREACHABLE', 'not in the account: no fallback');
    try {
      const { value } = await raceDials<Dialed>(
        [
          { name: 'addresses', afterMs: 0, dial: viaAddresses },
          {
            name: 'fallbacks',
            afterMs: ADDRESSES_HEAD_START_MS,
            deferred: () => answered,
            dial: async (signal) => {
              const account = await accountOf();
              if (!account) throw notInAccount;
              return this.viaFallbacks(record.name, account.host, { pinned }, undefined, signal);
            },
          },
        ],
        {
          close: (loser) => loser.transport.close({ code: 'closed', message: 'another path opened first' }),
          // Another key at one way does not end the race: every way checks the same pins.
          final: (f) => !transient(f) && !keyChanged(f),
        },
      );
      return value;
    } catch (error) {
      clearTimeout(early);
      // Not the account's failure to answer (asked after the key was seen), nor a fallback's refusal
      // (the relay's word): those would hide an interception at the address.
      if (changedAtAddress) throw changedAtAddress;
      if (!(error instanceof RaceFailed)) throw error;
      // No way linked and one met another key: that is the answer (an interception, or a reinstall).
      const changed = error.flat().find((f) => keyChanged(f.error));
      if (changed) throw changed.error;
      const [addresses, ...rest] = error.flat();
      const others = rest.filter((f) => f.error !== notInAccount);
      if (others.length === 0) throw addresses!.error;
      throw unreachable(addresses!.error, new RaceFailed(others));
    }
  }

  private async enrolled(name: string, account: AccountHost): Promise<Dialed> {
    const host = account.host;
    if (host.record === null || host.signature === null) {
      throw new HangarError(
        'E_HOST_UNREACHABLE',
        `"${name}" has not told the relay where it can be reached yet: start hangar-agent serve on it (it publishes its addresses once it is online)`,
      );
    }
    if (!verifyPresence(host.public_key, host.record, host.signature)) {
      throw new HangarError(
        'E_AUTH_BAD_SIGNATURE',
        `the relay's record of "${name}" is not signed by the key it lists for that host: the relay may be compromised. Nothing was dialed`,
      );
    }
    if (account.presence === 'offline') {
      const seen = host.last_seen === null ? 'never' : new Date(host.last_seen).toISOString();
      throw new HangarError(
        'E_HOST_UNREACHABLE',
        `"${name}" is offline (the relay last saw it: ${seen}); start hangar-agent serve on it`,
      );
    }
    const candidates = publishedAddresses(host);
    const signedIn = this.deps.account.stored();
    if (signedIn === undefined) throw new HangarError('E_AUTH_REQUIRED', 'signed out while linking; sign in again');
    const secrets = this.deps.account.store.secretsFor(signedIn.account_id, host.name, host.enrolled_at, Date.now());
    // No secret of ours proves this host: its keys are trusted only if the computer that approved
    // this one handed them over (or, approved without a code, on the relay's word). Before any dial.
    const keysFrom: HostKeysFrom = secrets.length > 0 ? 'own' : await hostKeysFor(this.deps.account, name, host);
    const linkAt = (addresses: string[], signal?: AbortSignal) =>
      secrets.length > 0
        ? this.firstLink(name, host, addresses, secrets, signal)
        : this.viaRelayPins(name, host, addresses, keysFrom, signal);
    let answered: string[] = [];
    let fallbacksStarted = false;
    const viaAddresses = async () => {
      answered = await answering(candidates);
      if (answered.length === 0) {
        throw new HangarError(
          'E_HOST_UNREACHABLE',
          `none of the addresses "${name}" published answered (${candidates.join(', ') || 'none published'})`,
        );
      }
      return linkAt(answered);
    };
    if (this.fallbacks.length === 0) return viaAddresses();
    // Raced as a paired host's dial is (pinned): the fallbacks start when no address linked within 0.75 s.
    try {
      const { value } = await raceDials<Dialed>(
        [
          { name: 'addresses', afterMs: 0, dial: viaAddresses },
          {
            name: 'fallbacks',
            afterMs: ADDRESSES_HEAD_START_MS,
            // An address took the TCP connection: it is being linked, the fallbacks wait for its verdict.
            deferred: () => answered.length > 0,
            dial: (signal) => {
              fallbacksStarted = true;
              return linkAt([VIA_FALLBACK], signal);
            },
          },
        ],
        {
          close: (loser) => loser.transport.close({ code: 'closed', message: 'another path opened first' }),
          // A secret refused at a listed address ends the dial before the fallbacks would offer it
          // to whoever the relay routes them to (as the sequential dial did: nothing spent). Once
          // they run, the refusal may be theirs having used it first: wait for their verdict.
          final: (f) => !transient(f) && (f.code !== 'E_AUTH_BAD_CODE' || !fallbacksStarted),
        },
      );
      return value;
    } catch (error) {
      if (!(error instanceof RaceFailed)) throw error;
      const refused = error.flat().find((f) => f.error.code === 'E_AUTH_BAD_CODE');
      if (refused) throw refused.error;
      const [addresses, ...rest] = error.flat();
      throw unreachable(addresses!.error, new RaceFailed(rest));
    }
  }

  /** Pairs with the secret of a token this computer made, then pins what the pairing proved. */
  private async firstLink(
    name: string,
    host: HostPresence,
    addresses: string[],
    secrets: { token_id: string; secret: string }[],
    signal?: AbortSignal,
  ): Promise<Dialed> {
    let refused: HangarError | undefined;
    let failure: HangarError | undefined;
    for (const address of addresses) {
      for (const { token_id, secret } of secrets) {
        let dialed: Dialed;
        try {
          dialed = await this.connect(name, address, { enrollment: { token_id, secret } }, host, signal);
        } catch (error) {
          const f = toHangarError(error);
          if (f.code === 'E_AUTH_BAD_CODE') {
            refused = f;
            continue;
          }
          if (keyChanged(f)) {
            // Not the certificate the host's record lists: another machine there, sent nothing. The
            // host is not at this address (a lying relay's own machine fails the same way).
            failure = new HangarError('E_HOST_UNREACHABLE', f.message, f.details);
            break;
          }
          if (!transient(f)) throw f;
          failure = f;
          break;
        }
        if (dialed.agent_key !== host.public_key || !sameCertificate(dialed.cert_fingerprint, host.cert_fingerprint)) {
          dialed.transport.close({ code: 'E_AUTH_HOST_KEY_CHANGED', message: 'the relay listed other keys' });
          throw new HangarError(
            'E_AUTH_HOST_KEY_CHANGED',
            `"${name}" at ${address} paired with this computer's enrollment secret, but its key is not the one the relay ` +
              'lists for it: the relay may be compromised. Nothing was pinned; pair with it directly instead ' +
              '(hangar-agent pair on the host, then hangar hosts add)',
            { seen: dialed.agent_key, listed: host.public_key },
          );
        }
        this.save(name, dialed);
        this.deps.account.store.forgetSecret(token_id);
        // The host trusts this computer first: the computer that approved it gets in by what this one signs.
        await settleHostTrust(this.deps.account).catch((error: unknown) =>
          this.deps.logger.warn(
            { host: name, err: toHangarError(error) },
            'could not vouch for the computer that approved this one (hangar hosts enroll-token tries again)',
          ),
        );
        await vouchFor(this.deps.account, host).catch((error: unknown) =>
          // The link stands; other computers of the account just cannot take this host from the relay yet.
          this.deps.logger.warn({ host: name, err: toHangarError(error) }, 'could not vouch for the host at the relay'),
        );
        return dialed;
      }
    }
    // Another core of this computer (a window) may have made the first link meanwhile.
    const done = this.deps.registry.list().find((r) => r.agent_key === host.public_key);
    if (done) return this.pinned(done);
    if (refused) {
      throw new HangarError(
        'E_AUTH_BAD_CODE',
        `the machine at ${addresses.join(', ')} that the relay lists as "${name}" did not accept the enrollment secret ` +
          `this computer kept for it: the relay may be compromised (pointing this computer at another machine), or the ` +
          `host enrolled with another line. Nothing was pinned. Run a new line from hangar hosts enroll-token --name ` +
          `${host.name} on the host, or pair with it directly (hangar-agent pair there, then hangar hosts add)`,
      );
    }
    throw failure!;
  }

  /** A host this computer has no secret for: the keys the relay lists; the host decides whether to let it in. */
  private async viaRelayPins(
    name: string,
    host: HostPresence,
    addresses: string[],
    keysFrom: HostKeysFrom,
    signal?: AbortSignal,
  ): Promise<Dialed> {
    const pinned = { agent_key: host.public_key, cert_fingerprint: colonFingerprint(host.cert_fingerprint) };
    let failure: HangarError | undefined;
    for (const address of addresses) {
      try {
        const dialed = await this.connect(name, address, { pinned }, host, signal);
        this.save(name, dialed);
        if (keysFrom === 'relay') {
          const accountId = this.deps.account.stored()?.account_id;
          if (accountId !== undefined) {
            this.deps.account.store.trustKey(accountId, {
              kind: 'relay_host',
              key: host.public_key,
              name,
              cert_fingerprint: host.cert_fingerprint,
            });
          }
          this.deps.logger.warn({ host: name }, "pinned an account host on the relay's word (approved without a code)");
        }
        return dialed;
      } catch (error) {
        const f = toHangarError(error);
        if (f.code === 'E_AUTH_UNKNOWN_DEVICE' || f.code === 'E_AUTH_DEVICE_REVOKED') throw this.notApproved(name);
        if (f.code === 'E_AUTH_HOST_KEY_CHANGED') {
          // Checked before a byte was sent. The host is not at this address (another machine holds
          // it, or the relay lies): an unreachable address, so the fallbacks still try the same keys.
          failure = new HangarError(
            'E_HOST_UNREACHABLE',
            `the machine at ${address} is not the "${name}" the relay describes (its key differs from the relay's record): ` +
              'another machine may hold that address, the relay may be compromised, or the host was reinstalled ' +
              '(enroll it again). Nothing was sent to it',
          );
          continue;
        }
        if (!transient(f)) throw f;
        failure = f;
      }
    }
    throw failure!;
  }

  private notApproved(name: string): HangarError {
    const me = this.deps.account.stored()?.device_name ?? this.deps.deviceName;
    return new HangarError(
      'E_AUTH_UNKNOWN_DEVICE',
      `"${name}" does not let this computer in: a device it trusts must approve this one first. On that device run ` +
        `hangar devices approve "${me}" and type the approval code hangar account shows here ` +
        '(a device that was revoked stays refused)',
    );
  }

  private get fallbacks(): ReachFallback[] {
    return this.deps.fallbacks ?? [];
  }

  /**
   * The fallbacks raced (WebRTC, then the relay's splice FALLBACK_HEAD_START_MS later, or as soon
   * as WebRTC failed); the first link that authenticates wins and the other attempt is aborted
   * (WebRTC closes its connection mid-ICE) or closed once it opens. When both failed, a refusal
   * that retrying cannot fix (a key that is not the pinned one, a limit) is the answer; otherwise
   * the host is unreachable for now, in words that say why each way failed. A WebRTC attempt whose two ends
   * got TURN candidates is waited for (a TURN link, a second or two to form, is the better path).
   */
  private async viaFallbacks(
    name: string,
    host: HostPresence,
    how: How,
    failure?: HangarError,
    signal?: AbortSignal,
  ): Promise<Dialed> {
    let promising = false;
    const ways: RaceWay<ConnectedHost & { path: Dialed['path'] }>[] = this.fallbacks.map((fallback, index) => ({
      name: fallback.name,
      afterMs: index * FALLBACK_HEAD_START_MS,
      deferred: () => promising,
      dial: (abort) => {
        // The wider race (pinned) was won meanwhile: nothing more is started.
        if (signal?.aborted) return Promise.reject(new HangarError('E_UNAVAILABLE', 'another path opened first'));
        return fallback.dial({
          name,
          host,
          how,
          // Aborted when the other fallback won, or when a way this race is part of won (an address).
          signal: signal ? AbortSignal.any([abort, signal]) : abort,
          promising: () => (promising = true),
        });
      },
    }));
    try {
      const { value: connected, name: via } = await raceDials(ways, {
        close: (loser) => loser.transport.close({ code: 'closed', message: 'another path opened first' }),
        // No failure of one way ends the race: another may still link with the same pins (a refusal
        // comes from every way alike, and the next starts as soon as one fails).
        final: () => false,
      });
      const address =
        'pinned' in how ? (this.deps.registry.find(name)?.address ?? publishedAddresses(host)[0]) : undefined;
      this.deps.logger.info({ host: name, via, path: connected.path?.().kind }, 'linked through a fallback');
      // The record keeps an address (the first published), where a later dial tries first.
      return { ...connected, address: address ?? publishedAddresses(host)[0] ?? UNPUBLISHED };
    } catch (error) {
      if (!(error instanceof RaceFailed)) throw error;
      for (const lost of error.failures) {
        this.deps.logger.info({ host: name, via: lost.name, err: lost.error.message }, 'fallback did not link');
      }
      // A refusal that retrying cannot fix (a key that is not the pinned one, a limit) is the answer;
      // then the enrollment's secret refused (the other way may have used it), as a sequential dial says it.
      const hard = error.failures.find(
        (f) => !transient(f.error) && !['E_HOST_OFFLINE', 'E_NOT_FOUND', 'E_AUTH_BAD_CODE'].includes(f.error.code),
      );
      if (hard) throw hard.error;
      const refused = error.failures.find((f) => f.error.code === 'E_AUTH_BAD_CODE');
      if (refused) throw refused.error;
      if (signal) throw error; // part of a wider race (pinned): that race says it
      throw unreachable(failure ?? new HangarError('E_HOST_UNREACHABLE', `"${name}" could not be reached`), error);
    }
  }

  private async connect(
    name: string,
    address: string,
    how: How,
    host?: HostPresence,
    signal?: AbortSignal,
  ): Promise<Dialed> {
    if (address === VIA_FALLBACK) return this.viaFallbacks(name, host!, how, undefined, signal);
    const connected = await connectToHost({
      address,
      deviceKey: this.deps.deviceKey,
      deviceName: this.deps.deviceName,
      hostName: name,
      ...how,
      // A first link offers the enrollment's proof only to the certificate the host's record lists.
      ...('enrollment' in how && host ? { expectCertificate: colonFingerprint(host.cert_fingerprint) } : {}),
    });
    return { ...connected, address };
  }

  private save(name: string, dialed: Dialed): void {
    const record: HostRecord = {
      name,
      address: dialed.address,
      agent_key: dialed.agent_key,
      cert_fingerprint: dialed.cert_fingerprint,
      embedded: false,
      added_at: Date.now(),
    };
    try {
      this.deps.registry.save(record);
    } catch (error) {
      // Saved by another core of this computer meanwhile: the same keys are fine.
      if (!isHangarError(error) || error.code !== 'E_HOST_EXISTS') throw error;
      if (this.deps.registry.get(name).agent_key !== dialed.agent_key) throw error;
    }
    this.deps.logger.info({ host: name, address: dialed.address }, 'linked to an account host and pinned it');
    this.deps.saved();
  }
}

/** A host no way reached: the first way's failure, then why each other way failed. */
function unreachable(first: HangarError, race: RaceFailed): HangarError {
  const failed = race
    .flat()
    .filter((f) => f.error !== first)
    .map((f) => `${f.name === 'relayed' ? 'through the relay' : `over ${f.name}`}: ${f.error.message}`);
  if (failed.length === 0) return first;
  return new HangarError(first.code, `${first.message}; ${failed.join('; ')}`, first.details);
}

/** The address kept for a host reached only through a fallback that published none (never dialed: it does not resolve). */
const UNPUBLISHED = 'unpublished.invalid:7070';

/**
 * How good a link's path is, lower better: TLS at an address (LAN, tailnet: `undefined` or
 * `direct`) 0, WebRTC hole-punched (`p2p`) 1, through TURN 2, the relay's splice (`relayed`) 3.
 * A link on a path above 0 keeps looking for a better one (connection/host-connection.ts).
 */
export function pathRank(kind: string | undefined): number {
  switch (kind) {
    case 'p2p':
      return 1;
    case 'turn':
      return 2;
    case 'relayed':
      return 3;
    default:
      return 0;
  }
}

/** What a host published, direct addresses first, then tailnet ones. */
export function publishedAddresses(host: HostPresence): string[] {
  if (host.record === null || host.signature === null) return [];
  if (!verifyPresence(host.public_key, host.record, host.signature)) return [];
  return [...host.record.addresses, ...host.record.tailnet];
}

/** The relay's hex certificate fingerprint as pins are stored (Node's `AB:CD:…`). */
export function colonFingerprint(hex: string): string {
  return hex.toUpperCase().match(/../g)!.join(':');
}

function sameCertificate(colon: string, hex: string): boolean {
  return colon.replace(/:/g, '').toLowerCase() === hex.toLowerCase();
}

function keyChanged(error: HangarError): boolean {
  return error.code === 'E_AUTH_HOST_KEY_CHANGED';
}

function transient(error: HangarError): boolean {
  return error.code === 'E_HOST_UNREACHABLE' || error.code === 'E_TIMEOUT' || error.code === 'E_UNAVAILABLE';
}
