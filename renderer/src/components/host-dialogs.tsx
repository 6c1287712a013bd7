import { useState } from 'react';
import { describeError, type CoreApi, type HostView } from '../api/index.js';
import { DialogError, DialogForm, Field, useDialogCall } from './form-dialog.js';
import { Modal } from './modal.js';

/** Add and pair: the address and the one-time code that `hangar-agent pair` prints on the host. */
export function AddHostDialog({ api, onClose }: { api: CoreApi; onClose(): void }) {
  const [name, setName] = useState('');
  const [address, setAddress] = useState('');
  const [code, setCode] = useState('');
  const { error, busy, run } = useDialogCall();
  return (
    <Modal title="Add and pair a host" onClose={onClose}>
      <p className="muted">
        On the host, run <code>hangar-agent pair</code>; it prints its address and a one-time code.
      </p>
      <DialogForm
        onSubmit={() =>
          run(api.call('hosts.add', { name: name.trim(), address: address.trim(), code: code.trim() }), onClose)
        }
        onCancel={onClose}
        error={error}
        busy={busy}
        submit={busy ? 'Pairing…' : 'Pair host'}
      >
        <Field
          label="Name"
          required
          value={name}
          onValue={setName}
          placeholder="mini"
          pattern="[A-Za-z0-9][A-Za-z0-9_\-]{0,31}"
        />
        <Field label="Address" required value={address} onValue={setAddress} placeholder="mini.tailnet:7070" />
        <Field label="Pairing code" required value={code} onValue={setCode} autoComplete="one-time-code" />
      </DialogForm>
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
  const { error, run } = useDialogCall();
  return (
    <Modal title="Rename host" onClose={onClose}>
      <DialogForm
        onSubmit={() => run(api.call('hosts.rename', { name: host, new_name: newName.trim() }), onClose)}
        onCancel={onClose}
        error={error}
        submit="Rename"
      >
        <label>
          Host
          <select value={host} onChange={(e) => setHost(e.target.value)}>
            {hosts.map((h) => (
              <option key={h.name}>{h.name}</option>
            ))}
          </select>
        </label>
        <Field label="New name" required autoFocus value={newName} onValue={setNewName} />
      </DialogForm>
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
      <DialogError error={error} />
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
      <DialogForm
        onSubmit={() => {
          if (value.trim()) onRename(value.trim());
          onClose();
        }}
        onCancel={onClose}
        error={undefined}
        submit="Rename"
      >
        <Field label="Tab name" autoFocus value={value} onValue={setValue} />
      </DialogForm>
    </Modal>
  );
}
