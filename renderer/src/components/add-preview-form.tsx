import { useId, useState } from 'react';
import { describeError, PreviewPort } from '../api/index.js';
import { Field } from './form-dialog.js';

const BAD_PORT = 'A port is a whole number from 1 to 65535, such as 5173.';

/** Checks what was typed as a port; the range is the protocol's own (PreviewPort). */
export function parsePortInput(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^\d{1,5}$/.test(trimmed)) return undefined;
  const parsed = PreviewPort.safeParse(Number(trimmed));
  return parsed.success ? parsed.data : undefined;
}

/** A port number (and an optional label) to make a preview of, for a port not among the candidates. */
export function AddPreviewForm({
  host,
  onAdd,
}: {
  host: string;
  onAdd(port: number, label: string | undefined): Promise<void>;
}) {
  const [port, setPort] = useState('');
  const [label, setLabel] = useState('');
  const [problem, setProblem] = useState<string>();
  const [busy, setBusy] = useState(false);
  const problemId = useId();
  return (
    <form
      className="add-preview"
      aria-label={`Add a preview on ${host}`}
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        const chosen = parsePortInput(port);
        if (chosen === undefined) {
          setProblem(BAD_PORT);
          return;
        }
        setProblem(undefined);
        setBusy(true);
        onAdd(chosen, label.trim() || undefined).then(
          () => {
            setBusy(false);
            setPort('');
            setLabel('');
          },
          (error: unknown) => {
            setBusy(false);
            setProblem(describeError(error));
          },
        );
      }}
    >
      <Field
        label="Port"
        value={port}
        inputMode="numeric"
        placeholder="5173"
        size={7}
        aria-invalid={problem === BAD_PORT}
        aria-describedby={problem ? problemId : undefined}
        onValue={setPort}
      />
      <Field label="Label (optional)" value={label} maxLength={64} placeholder="web" onValue={setLabel} />
      <button type="submit" disabled={busy} aria-label={`Add port as a preview on ${host}`}>
        {busy ? 'Adding…' : 'Add port'}
      </button>
      {problem && (
        <p className="host-error add-preview-problem" id={problemId} role="alert">
          {problem}
        </p>
      )}
    </form>
  );
}
