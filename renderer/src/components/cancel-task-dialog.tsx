import { useState } from 'react';
import { describeError, type CoreApi, type TaskInfo } from '../api/index.js';
import { visibleLines } from '../views/task-words.js';
import { DialogError } from './form-dialog.js';
import { Modal } from './modal.js';

/** Cancelling ends the agent's session and what it was doing: asked first, since it cannot be undone. */
export function CancelTaskDialog({
  api,
  task,
  onCancelled,
  onClose,
}: {
  api: CoreApi;
  task: TaskInfo;
  onCancelled(task: TaskInfo): void;
  onClose(): void;
}) {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const where = task.host
    ? `The agent's session on ${task.host}${task.session ? ` (${task.session})` : ''} is ended, with whatever it has not finished.`
    : "It leaves this computer's queue; no host has started it.";
  return (
    <Modal title="Cancel this task?" onClose={onClose}>
      <p className="task-prompt-quote">{visibleLines(task.spec.prompt)}</p>
      <p>{where}</p>
      <DialogError error={error} />
      <div className="modal-actions">
        <button type="button" onClick={onClose}>
          Keep it
        </button>
        <button
          type="button"
          className="danger"
          disabled={busy}
          onClick={() => {
            setBusy(true);
            api.call('tasks.cancel', { id: task.id, ...(task.host ? { host: task.host } : {}) }).then(
              (result) => {
                onCancelled(result.task);
                onClose();
              },
              (e: unknown) => {
                setBusy(false);
                setError(describeError(e));
              },
            );
          }}
        >
          Cancel task
        </button>
      </div>
    </Modal>
  );
}
