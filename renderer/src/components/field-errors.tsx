import { useState, type ReactNode, type Ref } from 'react';

/**
 * The problems of a form by field: what the core refused (its zod checks, `settings.paths.1`),
 * under the field it names. `belongsTo` says whether a bad path is about a field; ids are
 * `${id}-${field}-error`, and a field's aria-describedby names its first segment (`keep.daily` →
 * `${id}-keep-error`, where the error of the whole `keep` group is said).
 */
export function useFieldErrors(id: string, belongsTo: (path: string, field: string) => boolean) {
  const [fields, setFields] = useState<Map<string, string>>(new Map());
  const problem = (field: string): string | undefined => {
    for (const [path, message] of fields) if (belongsTo(path, field)) return message;
    return undefined;
  };
  const described = (field: string) =>
    problem(field) ? { 'aria-invalid': true, 'aria-describedby': `${id}-${field.split('.')[0]}-error` } : {};
  const fieldError = (field: string): ReactNode => {
    const message = problem(field);
    return message ? (
      <span className="field-error" id={`${id}-${field}-error`}>
        {message}
      </span>
    ) : null;
  };
  return { setFields, described, fieldError };
}

export type FieldErrors = ReturnType<typeof useFieldErrors>;

/**
 * A labelled text field of a form with field errors: the label's text, then an input (a textarea
 * when `rows` is given), then the field's error under it.
 */
export function TextField({
  label,
  field,
  errors,
  value,
  onValue,
  placeholder,
  rows,
  ref,
}: {
  label: ReactNode;
  /** The field the core's bad paths name (`paths`, `every_s`). */
  field: string;
  errors: FieldErrors;
  value: string;
  onValue(value: string): void;
  placeholder?: string;
  rows?: number;
  ref?: Ref<HTMLTextAreaElement>;
}) {
  const common = { value, placeholder, ...errors.described(field) };
  return (
    <>
      <label>
        {label}
        {rows === undefined ? (
          <input {...common} onChange={(event) => onValue(event.target.value)} />
        ) : (
          <textarea ref={ref} rows={rows} {...common} onChange={(event) => onValue(event.target.value)} />
        )}
      </label>
      {errors.fieldError(field)}
    </>
  );
}
