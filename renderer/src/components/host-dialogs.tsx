import { useState } from 'react';
import { describeError, type CoreApi, type HostView } from '../api/index.js';
import { Modal } from './modal.js';

/** Add and pair: the address and the one-time code that `hangar-agent pair` prints on the host. */
export function AddHostDialog({ api, onClose }: { api: CoreApi; onClose(): void }) {
  const [name, setName] = useState('');
  const [address, setAddress] = useState('');
  const [code, setCode] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  return (
    <Modal title="Add and pair a host" onClose={onClose}>
      <p className="muted">
        On the host, run <code>hangar-agent pair</code>; it prints its address and a one-time code.
      </p>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          setBusy(true);
          setError(undefined);
          api
            .call('hosts.add', { name: name.trim(), address: address.trim(), code: code.trim() })
            .then(onClose, (e: unknown) => {
              setBusy(false);
              setError(describeError(e));
            });
        }}
      >
        <label>
          Name
          <input
            required
            value={name}
            onChange={(e) => setName(e.target.value)}
            placeholder="mini"
            pattern="[A-Za-z0-9][A-Za-z0-9_\-]{0,31}"
          />
        </label>
        <label>
          Address
          <input
            required
            value={address}
            onChange={(e) => setAddress(e.target.value)}
            placeholder="mini.tailnet:7070"
          />
        </label>
        <label>
          Pairing code
          <input required value={code} onChange={(e) => setCode(e.target.value)} autoComplete="one-time-code" />
        </label>
        {error && (
          <p className="host-error" role="alert">
            {error}
          </p>
        )}
        <div className="modal-actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" disabled={busy}>
            {busy ? 'Pairing…' : 'Pair host'}
          </button>
        </div>
      </form>
    </Modal>
  );
}

export function RenameHostDialog({
  api,
  hosts,
  initial,
  onClose,
}: {
  api: CoreApi;
  hosts: HostView[];
  initial?: string;
  onClose(): void;
}) {
  const [host, setHost] = useState(initial ?? hosts[0]?.name ?? '');
  const [newName, setNewName] = useState('');
  const [error, setError] = useState<string>();
  return (
    <Modal title="Rename host" onClose={onClose}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          api
            .call('hosts.rename', { name: host, new_name: newName.trim() })
            .then(onClose, (e: unknown) => setError(describeError(e)));
        }}
      >
        <label>
          Host
          <select value={host} onChange={(e) => setHost(e.target.value)}>
            {hosts.map((h) => (
              <option key={h.name}>{h.name}</option>
            ))}
          </select>
        </label>
        <label>
          New name
          <input required autoFocus value={newName} onChange={(e) => setNewName(e.target.value)} />
        </label>
        {error && (
          <p className="host-error" role="alert">
            {error}
          </p>
        )}
        <div className="modal-actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit">Rename</button>
        </div>
      </form>
    </Modal>
  );
}

export function RemoveHostDialog({ api, host, onClose }: { api: CoreApi; host: string; onClose(): void }) {
  const [error, setError] = useState<string>();
  return (
    <Modal title={`Remove ${host}?`} onClose={onClose}>
      <p>
        Hangar forgets {host} and its key; a host of your account is removed from the account too. Its sessions and jobs
        keep running on the host; pair or enroll it again to see them.
      </p>
      {error && (
        <p className="host-error" role="alert">
          {error}
        </p>
      )}
      <div className="modal-actions">
        <button type="button" onClick={onClose}>
          Keep
        </button>
        <button
          type="button"
          className="danger"
          onClick={() =>
            api.call('hosts.remove', { name: host }).then(onClose, (e: unknown) => setError(describeError(e)))
          }
        >
          Remove {host}
        </button>
      </div>
    </Modal>
  );
}

export function RenameTabDialog({
  title,
  onRename,
  onClose,
}: {
  title: string;
  onRename(title: string): void;
  onClose(): void;
}) {
  const [value, setValue] = useState(title);
  return (
    <Modal title="Rename tab" onClose={onClose}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (value.trim()) onRename(value.trim());
          onClose();
        }}
      >
        <label>
          Tab name
          <input autoFocus value={value} onChange={(e) => setValue(e.target.value)} />
        </label>
        <div className="modal-actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit">Rename</button>
        </div>
      </form>
    </Modal>
  );
}
