import { readFileSync } from 'node:fs';
import { HangarError } from '@hangar/shared';
import type { BillingOptions } from './billing.js';
import type { StripeSettings } from './stripe-api.js';

/** The serve/doctor flags that configure billing (secrets come from files, never the command line). */
export interface BillingFlags {
  stripeSecretKeyFile?: string;
  stripeWebhookSecretFile?: string;
  stripePricePro?: string;
  stripePriceTeam?: string;
  stripeMeterEventName?: string;
  stripePriceProOverage?: string;
  stripeApi?: string;
  billingMinuteMs?: number;
}

const REQUIRED = {
  stripeSecretKeyFile: '--stripe-secret-key-file',
  stripeWebhookSecretFile: '--stripe-webhook-secret-file',
  stripePricePro: '--stripe-price-pro',
  stripePriceTeam: '--stripe-price-team',
  stripeMeterEventName: '--stripe-meter-event-name',
} as const;

/**
 * Billing is on with all five Stripe settings and off with none (a self-hosted relay: nothing
 * metered, everything allowed). Some but not all is a mistake, refused naming what is missing.
 */
export function billingFromFlags(flags: BillingFlags): BillingOptions {
  const given = (Object.keys(REQUIRED) as (keyof typeof REQUIRED)[]).filter((key) => flags[key] !== undefined);
  const minute = flags.billingMinuteMs !== undefined ? { minuteMs: flags.billingMinuteMs } : {};
  if (given.length === 0) {
    if (flags.stripePriceProOverage !== undefined || flags.stripeApi !== undefined) {
      throw new HangarError('E_BAD_REQUEST', `billing is off without ${Object.values(REQUIRED).join(', ')}`);
    }
    return minute;
  }
  const missing = (Object.keys(REQUIRED) as (keyof typeof REQUIRED)[]).filter((key) => flags[key] === undefined);
  if (missing.length > 0) {
    throw new HangarError(
      'E_BAD_REQUEST',
      `billing needs all of its Stripe settings; missing ${missing.map((key) => REQUIRED[key]).join(', ')} (or give none: billing off)`,
    );
  }
  const stripe: StripeSettings = {
    secretKey: secretFrom(flags.stripeSecretKeyFile!, '--stripe-secret-key-file', /^(sk|rk)_/),
    webhookSecret: secretFrom(flags.stripeWebhookSecretFile!, '--stripe-webhook-secret-file', /^whsec_/),
    prices: {
      pro: flags.stripePricePro!,
      team: flags.stripePriceTeam!,
      ...(flags.stripePriceProOverage !== undefined ? { proOverage: flags.stripePriceProOverage } : {}),
    },
    meterEventName: flags.stripeMeterEventName!,
    ...(flags.stripeApi !== undefined ? { api: apiAddress(flags.stripeApi) } : {}),
  };
  return { stripe, ...minute };
}

function secretFrom(file: string, flag: string, shape: RegExp): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new HangarError('E_BAD_REQUEST', `${flag} ${file}: cannot read it (${(error as Error).message})`);
  }
  if (!shape.test(text)) {
    throw new HangarError(
      'E_BAD_REQUEST',
      `${flag} ${file}: does not hold what Stripe issues (it should start ${shape.source.slice(1)})`,
    );
  }
  return text;
}

function apiAddress(url: string): NonNullable<StripeSettings['api']> {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new HangarError('E_BAD_REQUEST', `--stripe-api ${url}: expected an http(s):// URL`);
  }
  const protocol = parsed.protocol === 'http:' ? 'http' : 'https';
  return { protocol, host: parsed.hostname, port: Number(parsed.port || (protocol === 'http' ? 80 : 443)) };
}
