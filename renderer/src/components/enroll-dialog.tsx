import { useState } from 'react';
import { describeError, type CoreApi, type HostView } from '../api/index.js';
import { DialogForm, Field } from './form-dialog.js';
import { Modal } from './modal.js';

/** A token's host may enroll a little "before" it was made, by the relay's clock against ours. */
const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * Enroll a host in the account: a name, then the one line to run on the host. The dialog watches
 * the host list and turns green when the relay says that host is online.
 */
export function EnrollHostDialog({ api, hosts, onClose }: { api: CoreApi; hosts: HostView[]; onClose(): void }) {
  const [name, setName] = useState('');
  const [made, setMade] = useState<{
    name: string;
    command: string;
    install_command: string;
    expires_at: number;
    at: number;
    /** Hosts of that name already online when the line was made: not the one this line enrolls. */
    before: Set<string>;
  }>();
  const [error, setError] = useState<string>();
  const [copied, setCopied] = useState(false);
  /** A machine without the agent gets the installer's line; one that has it, hangar-agent enroll. */
  const [installed, setInstalled] = useState(false);
  const line = made ? (installed ? made.command : made.install_command) : '';
  const arrived = made
    ? hosts.find(
        (h) =>
          h.account !== null &&
          h.account.name === made.name &&
          (h.account.enrolled_at >= made.at - CLOCK_SKEW_MS || !made.before.has(h.account.host_id)) &&
          (h.status === 'online' || h.account.presence === 'online'),
      )
    : undefined;
  return (
    <Modal title="Enroll a host" onClose={onClose}>
      {!made ? (
        <DialogForm
          onSubmit={() => {
            setError(undefined);
            const at = Date.now();
            const wanted = name.trim();
            const before = new Set(
              hosts.flatMap((h) =>
                h.account?.name === wanted && h.account.presence === 'online' ? [h.account.host_id] : [],
              ),
            );
            api.call('hosts.enroll_token', { name: wanted }).then(
              (result) =>
                setMade({
                  name: result.name,
                  command: result.command,
                  install_command: result.install_command,
                  expires_at: result.expires_at,
                  at,
                  before,
                }),
              (e: unknown) => setError(describeError(e)),
            );
          }}
          onCancel={onClose}
          error={error}
          submit="Make the line"
        >
          <p className="muted">You get one line to run on the host; it works once, for 15 minutes.</p>
          <Field
            label="Host name"
            required
            autoFocus
            value={name}
            onValue={setName}
            placeholder="mini"
            pattern="[A-Za-z0-9][A-Za-z0-9_\-]{0,31}"
          />
        </DialogForm>
      ) : (
        <div>
          <fieldset className="enroll-kind">
            <label>
              <input type="radio" name="enroll-kind" checked={!installed} onChange={() => setInstalled(false)} />
              New machine: install the agent as a service
            </label>
            <label>
              <input type="radio" name="enroll-kind" checked={installed} onChange={() => setInstalled(true)} />
              hangar-agent is already installed
            </label>
          </fieldset>
          <p>
            On <strong>{made.name}</strong>, run this line (valid until {new Date(made.expires_at).toLocaleTimeString()}
            , once).{' '}
            {installed ? (
              <>
                Put <code>npx</code> in front when hangar-agent comes from npm there, then keep{' '}
                <code>hangar-agent serve --data ~/.hangar-agent</code> running:
              </>
            ) : (
              <>It needs Node.js 20 or newer on the host; it installs hangar-agent, enrolls it and keeps it running:</>
            )}
          </p>
          <pre className="enroll-line" aria-label="Line to run on the host">
            {line}
          </pre>
          <div className="modal-actions">
            <button
              type="button"
              onClick={() =>
                void navigator.clipboard.writeText(line).then(
                  () => setCopied(true),
                  () => setCopied(false),
                )
              }
            >
              {copied ? 'Copied' : 'Copy'}
            </button>
          </div>
          {arrived ? (
            <p className="enroll-status enroll-online" role="status">
              {arrived.name} is online.
            </p>
          ) : (
            <p className="enroll-status enroll-waiting" role="status">
              Waiting for {made.name} to come online…
            </p>
          )}
          <div className="modal-actions">
            <button type="button" onClick={onClose}>
              {arrived ? 'Done' : 'Close'}
            </button>
          </div>
        </div>
      )}
    </Modal>
  );
}
