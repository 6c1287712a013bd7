import { useCallback, useEffect, useState } from 'react';
import { describeError, visibleText, type BillingStatus, type CoreApi } from '../api/index.js';
import { MinutesChart } from '../components/minutes-chart.js';

const PLAN_NAMES: Record<BillingStatus['plan'], string> = {
  trial: 'Trial (7 days of Pro)',
  pro: 'Pro',
  team: 'Team',
  none: 'No plan',
  unmetered: 'Unmetered',
};

const day = (ms: number) =>
  new Date(ms).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' });

/** Warn when this share of the included minutes is used. */
const MINUTES_WARNING = 0.8;
/** Warn when the trial has this many days left or fewer. */
const TRIAL_WARNING_DAYS = 2;

/** What the Account page warns about, from the relay's billing status. */
export function billingBanners(b: BillingStatus): { kind: 'warning' | 'refusing'; text: string }[] {
  const banners: { kind: 'warning' | 'refusing'; text: string }[] = [];
  if (b.refusing !== null)
    banners.push({ kind: 'refusing', text: `Build jobs are being refused: ${b.refusing.message}` });
  if (b.plan === 'trial' && b.trial.days_left <= TRIAL_WARNING_DAYS) {
    banners.push({
      kind: 'warning',
      text: `Your trial ends ${b.trial.days_left === 0 ? 'today' : `in ${b.trial.days_left} day${b.trial.days_left === 1 ? '' : 's'}`} (${day(b.trial.ends_at)}). Upgrade to keep running build jobs.`,
    });
  }
  const { used, included } = b.minutes;
  if (included !== null && included > 0 && used / included >= MINUTES_WARNING && b.refusing === null) {
    banners.push({
      kind: 'warning',
      text: `${used} of ${included} included build minutes used (${Math.floor((used / included) * 100)} %)${b.plan === 'pro' ? '; minutes past them are billed per minute' : ''}.`,
    });
  }
  if (b.payment_failed) {
    banners.push({
      kind: 'warning',
      text: 'The last payment failed and Stripe is retrying: update the card in Manage billing.',
    });
  }
  return banners;
}

/** The account's plan and build minutes (from the relay, through the core), with buying and managing it. */
export default function AccountView({ api }: { api: CoreApi }) {
  const [billing, setBilling] = useState<BillingStatus>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const load = useCallback(() => {
    api.call('account.billing', {}).then(
      (status) => {
        setBilling(status);
        setError(undefined);
      },
      (e: unknown) => setError(describeError(e)),
    );
  }, [api]);
  useEffect(() => {
    load();
    // The relay pushes no billing events to windows: a minute's refresh keeps the page current.
    const timer = setInterval(load, 60_000);
    const changed = api.on('account.changed', load);
    return () => {
      clearInterval(timer);
      void changed.dispose();
    };
  }, [api, load]);

  const open = (call: () => Promise<{ url: string }>) => {
    setBusy(true);
    setError(undefined);
    call().then(
      ({ url }) => {
        setBusy(false);
        window.open(url, '_blank', 'noopener,noreferrer');
      },
      (e: unknown) => {
        setBusy(false);
        setError(describeError(e));
      },
    );
  };

  if (billing === undefined) {
    return (
      <section className="account-page" aria-label="Account">
        <h2>Account</h2>
        {error ? (
          <p className="empty-state" role="alert">
            The plan could not be read: {error}{' '}
            <button type="button" onClick={load}>
              Try again
            </button>
          </p>
        ) : (
          <p className="empty-state">Loading the plan…</p>
        )}
      </section>
    );
  }
  const b = billing;
  const owner = b.role === 'owner';
  const included = b.minutes.included === null ? 'unlimited' : `${b.minutes.included} included`;
  return (
    <section className="account-page" aria-label="Account">
      <h2>Account</h2>
      {billingBanners(b).map((banner) => (
        <div key={banner.text} className={`banner billing-banner billing-${banner.kind}`} role="alert">
          {visibleText(banner.text)}
        </div>
      ))}
      {error && (
        <div className="banner" role="alert">
          {error}
        </div>
      )}
      <dl className="account-facts">
        <dt>Plan</dt>
        <dd data-testid="plan">
          {PLAN_NAMES[b.plan]}
          {b.plan === 'none' && (b.subscription === null ? ' — the trial has ended' : ' — the subscription has ended')}
          {b.subscription?.cancel_at_period_end ? ' — cancelled at the end of the period' : ''}
        </dd>
        {b.billing === 'on' && (
          <>
            <dt>Trial</dt>
            <dd data-testid="trial">
              {b.plan === 'trial'
                ? `${b.trial.days_left} day${b.trial.days_left === 1 ? '' : 's'} left (ends ${day(b.trial.ends_at)})`
                : `${day(b.trial.started_at)} – ${day(b.trial.ends_at)}${b.trial.days_left === 0 ? ', ended' : ''}`}
            </dd>
            <dt>Build minutes this period</dt>
            <dd data-testid="minutes">
              {b.minutes.used} used of {included}
              {b.minutes.overage > 0 ? `, ${b.minutes.overage} over (billed per minute)` : ''}{' '}
              <span className="muted">
                ({day(b.period.start)} – {day(b.period.end)})
              </span>
            </dd>
            <dt>Next invoice</dt>
            <dd data-testid="next-invoice">{b.next_invoice_at === null ? 'none' : day(b.next_invoice_at)}</dd>
          </>
        )}
      </dl>
      {b.billing === 'off' ? (
        <p className="muted">Billing is off on this relay: build minutes are not counted or limited.</p>
      ) : (
        <>
          <h3>Build minutes per day</h3>
          <MinutesChart days={b.minutes_per_day} />
          <div className="account-actions">
            {owner && b.subscription === null && (
              <>
                <button
                  type="button"
                  className="primary"
                  disabled={busy}
                  onClick={() => open(() => api.call('account.checkout', { plan: 'pro' }))}
                >
                  Upgrade to Pro ($20/month)
                </button>
                <button
                  type="button"
                  disabled={busy}
                  onClick={() => open(() => api.call('account.checkout', { plan: 'team' }))}
                >
                  Upgrade to Team ($200/month)
                </button>
              </>
            )}
            {owner && b.subscription !== null && (
              <button type="button" disabled={busy} onClick={() => open(() => api.call('account.portal', {}))}>
                Manage billing
              </button>
            )}
            {!owner && <p className="muted">Only the account’s owner can change the plan.</p>}
          </div>
        </>
      )}
    </section>
  );
}
