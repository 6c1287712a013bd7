import { useState, type InputHTMLAttributes, type ReactNode } from 'react';
import { describeError } from '../api/index.js';

/** What went wrong, as an alert under a dialog's or form's fields; nothing when all is well. */
export function DialogError({ error }: { error: string | undefined }) {
  if (!error) return null;
  return (
    <p className="host-error" role="alert">
      {error}
    </p>
  );
}

/**
 * A dialog's form: its fields, the error, then Cancel (`onCancel`) and the submit button. The page
 * does not navigate on submit; `onSubmit` does the work.
 */
export function DialogForm({
  onSubmit,
  onCancel,
  error,
  submit,
  busy,
  children,
}: {
  onSubmit(): void;
  onCancel(): void;
  error: string | undefined;
  /** The submit button's text. */
  submit: ReactNode;
  /** The submit button is disabled while this holds. */
  busy?: boolean;
  children: ReactNode;
}) {
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        onSubmit();
      }}
    >
      {children}
      <DialogError error={error} />
      <div className="modal-actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" disabled={busy}>
          {submit}
        </button>
      </div>
    </form>
  );
}

/** A labelled text input, the label's text first (so the label names the input). */
export function Field({
  label,
  onValue,
  ...input
}: { label: ReactNode; onValue(value: string): void } & InputHTMLAttributes<HTMLInputElement>) {
  return (
    <label>
      {label}
      <input {...input} onChange={(e) => onValue(e.target.value)} />
    </label>
  );
}

/**
 * A dialog's call to the core: busy while it runs; done when it succeeds; its error, described,
 * when it fails (and busy again false, to try once more).
 */
export function useDialogCall() {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const run = (call: Promise<unknown>, done: () => void) => {
    setBusy(true);
    setError(undefined);
    call.then(done, (e: unknown) => {
      setBusy(false);
      setError(describeError(e));
    });
  };
  return { error, setError, busy, run };
}
