import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { HangarError, toHangarError } from '@hangar/shared';
import { openStore, ping, type StorageConfig } from './store/db.js';
import { pendingMigrations } from './store/migrations.js';
import { hasEntitlementKey } from './billing/entitlement-key.js';
import { billingFromFlags, type BillingFlags } from './billing/flags.js';

/**
 * `hangar-relay doctor`: each check prints `ok` or `FAIL` with what to do. Read-only: it does
 * not migrate (serve and migrate do).
 */
export async function runDoctor(
  storage: StorageConfig,
  options: BillingFlags & { tlsCert?: string; tlsKey?: string; oidcIssuer?: string },
  print: (line: string) => void,
): Promise<boolean> {
  let healthy = true;
  const check = async (name: string, run: () => Promise<string>) => {
    try {
      print(`ok    ${name}: ${await run()}`);
    } catch (error) {
      healthy = false;
      print(`FAIL  ${name}: ${toHangarError(error).message}`);
    }
  };
  const store = await openStore(storage, { migrate: false, create: false }).catch((error: unknown) => {
    print(`FAIL  database: ${toHangarError(error).message}`);
    return undefined;
  });
  if (store === undefined) return false;
  try {
    await check('database', async () => {
      await ping(store.db);
      return store.description;
    });
    await check('schema', async () => {
      const pending = await pendingMigrations(store.db as never, store.dialect);
      if (pending.length > 0)
        throw new HangarError(
          'E_UNAVAILABLE',
          `${pending.length} migration(s) pending (${pending.join(', ')}): run hangar-relay migrate`,
        );
      return 'up to date';
    });
    await check('access-token key', async () => {
      const row = await store.db
        .selectFrom('meta')
        .select('value')
        .where('key', '=', 'access_token_key')
        .executeTakeFirst();
      if (row === undefined) throw new HangarError('E_UNAVAILABLE', 'missing: run hangar-relay migrate or serve once');
      return 'present (kept in the database, shared by replicas)';
    });
    await check('entitlement key', async () => {
      if (!(await hasEntitlementKey(store.db)))
        throw new HangarError('E_UNAVAILABLE', 'missing: run hangar-relay migrate');
      return 'present (kept in the database; hosts get its public half)';
    });
    await check('billing', async () => {
      const billing = billingFromFlags(options);
      if (billing.stripe === undefined) {
        return 'off: no Stripe keys, so nothing is metered and every job is allowed (a self-hosted relay)';
      }
      const s = billing.stripe;
      const mode = s.secretKey.includes('_live_') ? 'live' : 'test';
      return `on (Stripe ${mode} mode): Pro ${s.prices.pro}, Team ${s.prices.team}, meter event "${s.meterEventName}", ${
        s.prices.proOverage
          ? `Pro overage ${s.prices.proOverage}`
          : 'no Pro overage price (minutes past 300 are refused)'
      }`;
    });
    if (options.tlsCert !== undefined || options.tlsKey !== undefined) {
      await check('TLS', async () => {
        if (options.tlsCert === undefined || options.tlsKey === undefined)
          throw new HangarError('E_BAD_REQUEST', 'give both --tls-cert and --tls-key');
        const cert = new X509Certificate(readFileSync(options.tlsCert));
        const key = createPrivateKey(readFileSync(options.tlsKey));
        if (!cert.checkPrivateKey(key))
          throw new HangarError('E_BAD_REQUEST', 'the key does not belong to the certificate');
        const expires = new Date(cert.validTo);
        if (expires.getTime() < Date.now())
          throw new HangarError('E_BAD_REQUEST', `the certificate expired on ${expires.toISOString()}`);
        return `${cert.subject.replace(/\n/g, ', ')}, valid until ${expires.toISOString()}`;
      });
    }
    if (options.oidcIssuer !== undefined) {
      await check('OIDC provider', async () => {
        const url = `${options.oidcIssuer!.replace(/\/+$/, '')}/.well-known/openid-configuration`;
        const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
        if (!response.ok) throw new HangarError('E_AUTH_OIDC', `${url} answered HTTP ${response.status}`);
        const document = (await response.json()) as { jwks_uri?: string };
        if (typeof document.jwks_uri !== 'string') throw new HangarError('E_AUTH_OIDC', `${url} names no jwks_uri`);
        return `discovery ok, keys at ${document.jwks_uri}`;
      });
    }
  } finally {
    await store.dispose();
  }
  return healthy;
}
