import { useEffect, useState } from 'react';
import {
  describeError,
  visibleText,
  type AccountStatus,
  type CoreApi,
  type CoreResult,
  type DeviceEntry,
} from '../api/index.js';
import { DialogError, DialogForm, Field, useDialogCall } from './form-dialog.js';
import { Modal } from './modal.js';

/** What the sign-in dialog does: sign in, make an account, or join a Team account with an invitation. */
export type SignInMode = 'signin' | 'signup' | 'join';

/** An invitation token in pasted text: alone, or in the `hangar team join …` line the owner was given. */
const INVITE_TOKEN = /inv1_[A-Za-z0-9_-]{43}/;

/**
 * What a pasted invitation says: the token, and the relay and email when the whole line
 * (`hangar team join --relay URL --email EMAIL inv1_…`) was pasted.
 */
export function readInvitation(text: string): { token: string; relay?: string; email?: string } {
  const word = (flag: string) => new RegExp(`--${flag}\\s+'?([^\\s']+)'?`).exec(text)?.[1];
  return { token: INVITE_TOKEN.exec(text)?.[0] ?? text.trim(), relay: word('relay'), email: word('email') };
}

/**
 * Signing in to an account on a relay, making one, or joining a Team account with the invitation
 * its owner gave (pasted whole: the relay and email are read from it). The password goes to this
 * computer's core, which proves to the relay that it holds this computer's key; the key itself
 * never leaves it.
 */
export function SignInDialog({ api, mode: initial, onClose }: { api: CoreApi; mode: SignInMode; onClose(): void }) {
  const [mode, setMode] = useState(initial);
  const [relay, setRelay] = useState('');
  const [email, setEmail] = useState('');
  const [invitation, setInvitation] = useState('');
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [deviceName, setDeviceName] = useState('');
  const { error, setError, busy, run } = useDialogCall();
  const signup = mode === 'signup';
  const join = mode === 'join';
  const newPassword = signup || join;
  const pasted = (text: string) => {
    setInvitation(text);
    const read = readInvitation(text);
    if (read.relay !== undefined) setRelay(read.relay);
    if (read.email !== undefined) setEmail(read.email);
  };
  return (
    <Modal title={signup ? 'Create an account' : join ? 'Join a team' : 'Sign in'} onClose={onClose}>
      <p className="muted">
        {signup
          ? 'This computer becomes the account’s first, trusted device.'
          : join
            ? 'Paste the invitation the account’s owner gave you and choose a password. This computer then waits until a computer of the team approves it, with the code it shows.'
            : 'A computer new to the account waits until one you already use approves it.'}
      </p>
      {mode === 'signin' && (
        <p>
          <button type="button" className="link" onClick={() => setMode('join')}>
            I have an invitation to a team
          </button>
        </p>
      )}
      <DialogForm
        onSubmit={() => {
          if (newPassword && password !== again) {
            setError('The two passwords differ.');
            return;
          }
          const params = {
            relay_url: relay.trim(),
            email: email.trim(),
            password,
            ...(deviceName.trim() ? { device_name: deviceName.trim() } : {}),
          };
          run(
            join
              ? api.call('account.join', { ...params, invite_token: readInvitation(invitation).token })
              : api.call(signup ? 'account.signup' : 'account.login', params),
            onClose,
          );
        }}
        onCancel={onClose}
        error={error}
        busy={busy}
        submit={busy ? (join ? 'Joining…' : 'Signing in…') : signup ? 'Create account' : join ? 'Join' : 'Sign in'}
      >
        {join && (
          <Field
            label="Invitation"
            required
            value={invitation}
            onValue={pasted}
            placeholder="hangar team join --relay … --email … inv1_…"
            autoComplete="off"
            spellCheck={false}
          />
        )}
        <Field label="Relay" required value={relay} onValue={setRelay} placeholder="https://relay.example.com" />
        <Field label="Email" required type="email" value={email} onValue={setEmail} autoComplete="email" />
        <Field
          label="Password"
          required
          type="password"
          value={password}
          onValue={setPassword}
          autoComplete={newPassword ? 'new-password' : 'current-password'}
        />
        {newPassword && (
          <Field
            label="Password again"
            required
            type="password"
            value={again}
            onValue={setAgain}
            autoComplete="new-password"
          />
        )}
        <Field
          label="This computer’s name (optional)"
          value={deviceName}
          onValue={setDeviceName}
          placeholder="its host name"
        />
      </DialogForm>
    </Modal>
  );
}

const DEVICE_STATUS = {
  first: 'trusted (first)',
  endorsed: 'trusted',
  pending: 'waiting for approval',
  revoked: 'revoked',
} as const;

/** The account: this computer's fingerprint and standing, the account's devices, and signing out. */
export function AccountDialog({
  api,
  status,
  onApprove,
  onClose,
}: {
  api: CoreApi;
  status: AccountStatus;
  onApprove(device: DeviceEntry): void;
  onClose(): void;
}) {
  const [devices, setDevices] = useState<DeviceEntry[]>();
  const [error, setError] = useState<string>();
  const account = status.account;
  useEffect(() => {
    if (!account) return;
    api.call('devices.list', {}).then(
      (listed) => setDevices(listed.devices),
      (e: unknown) => setError(describeError(e)),
    );
  }, [api, account]);
  if (!account) return null;
  const trusted = account.device.status === 'first' || account.device.status === 'endorsed';
  return (
    <Modal title="Account" onClose={onClose}>
      <p>
        Signed in to <code>{account.relay_url}</code> as <strong>{account.email}</strong> ·{' '}
        <span className={`relay-${status.relay}`}>relay {status.relay}</span>
      </p>
      <p>
        This computer, <strong>{visibleText(account.device.name)}</strong>, is {DEVICE_STATUS[account.device.status]}.
        Its key’s fingerprint: <code className="fingerprint">{account.device.fingerprint}</code>
      </p>
      {account.device.host_keys_from === 'relay' && (
        <p>It was approved without a code: it took the account’s hosts’ keys on the relay’s word (hosts marked so).</p>
      )}
      {account.device.approval_code && (
        <p>
          To approve it, type this code on a computer already in the account:{' '}
          <code className="fingerprint" aria-label="Approval code">
            {account.device.approval_code}
          </code>
        </p>
      )}
      <DialogError error={error} />
      {devices && (
        <ul className="device-list" aria-label="Devices of the account">
          {devices.map((d) => (
            <li key={d.device_id} aria-label={`${d.name}, ${DEVICE_STATUS[d.status]}`}>
              <strong>{visibleText(d.name)}</strong> {d.this_device ? '(this computer) ' : ''}
              <span className="muted">{DEVICE_STATUS[d.status]}</span>
              <div>
                <code className="fingerprint">{d.fingerprint}</code>
                {d.approved_by && <span className="muted"> · approved by {visibleText(d.approved_by.name)}</span>}
              </div>
              {d.needs_approval_again && <p className="muted">{visibleText(d.needs_approval_again)}</p>}
              {trusted && !d.this_device && d.status === 'pending' && (
                <button type="button" onClick={() => onApprove(d)}>
                  Approve {d.name}…
                </button>
              )}
              {trusted && !d.this_device && d.status !== 'revoked' && (
                <button
                  type="button"
                  className="danger"
                  onClick={() =>
                    api.call('devices.revoke', { device: d.device_id }).then(
                      (revoked) =>
                        setDevices((list) => list?.map((x) => (x.device_id === d.device_id ? revoked.device : x))),
                      (e: unknown) => setError(describeError(e)),
                    )
                  }
                >
                  Revoke {d.name}
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {trusted && devices && (
        <TeamSection
          api={api}
          devices={devices}
          onRemoved={() =>
            api.call('devices.list', {}).then(
              (listed) => setDevices(listed.devices),
              (e: unknown) => setError(describeError(e)),
            )
          }
        />
      )}
      <div className="modal-actions">
        <button type="button" onClick={() => void api.call('account.logout', {}).then(onClose, setErrorOf(setError))}>
          Sign out
        </button>
        <button type="button" onClick={onClose}>
          Done
        </button>
      </div>
    </Modal>
  );
}

type Team = CoreResult<'account.team'>;

/**
 * The account's people (Team, relay/PROTOCOL.md "Team members"): the members and, for the owner,
 * the invitations waiting, each with a button that asks first. Removing a member revokes each of
 * their devices with a statement this computer signs (the core does it, as for Revoke). Shown only
 * when there is someone besides the owner or an invitation waits.
 */
function TeamSection({ api, devices, onRemoved }: { api: CoreApi; devices: DeviceEntry[]; onRemoved(): void }) {
  const [team, setTeam] = useState<Team>();
  const [asking, setAsking] = useState<{ kind: 'remove' | 'withdraw'; email: string }>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [loads, setLoads] = useState(0); // bumped after a change: the list is read again
  useEffect(() => {
    api.call('account.team', {}).then(setTeam, (e: unknown) => setError(describeError(e)));
  }, [api, loads]);
  if (!team) return error ? <DialogError error={error} /> : null;
  const owner = team.invites !== null;
  const joined = team.members.filter((m) => m.status === 'active');
  if (joined.length <= 1 && (team.invites ?? []).length === 0) return null;
  const theirDevices = (email: string) =>
    devices.filter((d) => d.member_email === email && d.status !== 'revoked').map((d) => visibleText(d.name));
  const confirmed = () => {
    if (!asking) return;
    setBusy(true);
    const call =
      asking.kind === 'remove'
        ? api.call('account.remove_member', { email: asking.email }).then(onRemoved)
        : api.call('account.withdraw_invite', { email: asking.email });
    void call
      .then(
        () => {
          setAsking(undefined);
          setError(undefined);
          setLoads((n) => n + 1);
        },
        (e: unknown) => setError(describeError(e)),
      )
      .finally(() => setBusy(false));
  };
  return (
    <section aria-label="People of the account">
      <h3>People</h3>
      <ul className="device-list">
        {joined.map((m) => (
          <li key={m.email} aria-label={`${m.email}, ${m.role}`}>
            <strong>{visibleText(m.email)}</strong> <span className="muted">{m.role}</span>{' '}
            {owner && m.role === 'member' && (
              <button type="button" className="danger" onClick={() => setAsking({ kind: 'remove', email: m.email })}>
                Remove {m.email}…
              </button>
            )}
          </li>
        ))}
        {(team.invites ?? []).map((i) => (
          <li key={i.email} aria-label={`${i.email}, invited`}>
            <strong>{visibleText(i.email)}</strong>{' '}
            <span className="muted">invited, until {new Date(i.expires_at).toLocaleDateString()}</span>
            <button type="button" onClick={() => setAsking({ kind: 'withdraw', email: i.email })}>
              Withdraw {i.email}…
            </button>
          </li>
        ))}
      </ul>
      {asking && (
        <div role="alertdialog" aria-label={asking.kind === 'remove' ? 'Remove a member' : 'Withdraw an invitation'}>
          {asking.kind === 'remove' ? (
            <p>
              Remove <strong>{visibleText(asking.email)}</strong> from the account?{' '}
              {theirDevices(asking.email).length > 0
                ? `This revokes their devices (${theirDevices(asking.email).join(', ')}): every host of the account refuses them, and their password no longer signs in.`
                : 'Their password no longer signs in.'}
            </p>
          ) : (
            <p>
              Withdraw the invitation of <strong>{visibleText(asking.email)}</strong>? It no longer lets anyone join.
            </p>
          )}
          <div className="modal-actions">
            <button type="button" className="danger" disabled={busy} onClick={confirmed}>
              {asking.kind === 'remove' ? `Remove ${asking.email}` : `Withdraw ${asking.email}`}
            </button>
            <button type="button" onClick={() => setAsking(undefined)}>
              Cancel
            </button>
          </div>
        </div>
      )}
      <DialogError error={error} />
    </section>
  );
}

/**
 * A new device asks to join: the user types the code it shows (relay/PROTOCOL.md "More devices: the
 * approval code"). The core approves only if that code made the tag the relay holds for the device's
 * key, then hands it this computer's hosts' keys sealed with the code.
 */
export function ApproveDeviceDialog({ api, device, onDone }: { api: CoreApi; device: DeviceEntry; onDone(): void }) {
  const { error, busy, run } = useDialogCall();
  const [code, setCode] = useState('');
  return (
    <Modal title={`${device.name} asks to join your account`} onClose={onDone}>
      <p>
        A computer named <strong>{visibleText(device.name)}</strong> signed in to your account. It shows an approval
        code (hangar login printed it there; its window shows it under Account).
      </p>
      <DialogForm
        onSubmit={() => run(api.call('devices.approve', { device: device.device_id, code }), onDone)}
        onCancel={onDone}
        busy={busy}
        error={error}
        submit={`Approve ${device.name}`}
      >
        <Field
          label="Its approval code"
          value={code}
          onValue={setCode}
          autoComplete="off"
          spellCheck={false}
          required
        />
      </DialogForm>
      <p className="muted">If the code does not match, the relay may have swapped its key: nothing is approved.</p>
    </Modal>
  );
}

function setErrorOf(set: (message: string) => void) {
  return (e: unknown) => set(describeError(e));
}
