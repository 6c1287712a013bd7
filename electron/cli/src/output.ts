import { visibleText } from '@hangar/shared';

/**
 * Every string that came from a host goes through this before it reaches the user's terminal:
 * control characters are shown as escapes (`\x1b`), never obeyed, so a job's command holding
 * `ESC ]52;…` cannot write the clipboard. Job logs and attached terminals are the user's own raw
 * output and do not pass here; printJson escapes what JSON itself would leave raw.
 */
export { visibleText };

/** Plain aligned columns for human output (cells are host text: shown visibly); --json prints the data itself instead. */
export function table(headers: string[], input: string[][]): string {
  const rows = input.map((row) => row.map(visibleText));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/**
 * JSON escapes C0 controls itself; DEL, C1 controls (U+009B is a CSI to some terminals) and bidi
 * controls it leaves raw, so they are escaped here too (`\u009b`): the same value for a program,
 * nothing a terminal acts on when --json is read on one. They can only occur inside strings.
 */
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

export function printJson(value: unknown): void {
  const text = JSON.stringify(value, null, 2).replace(
    JSON_UNSAFE,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  process.stdout.write(text + '\n');
}

export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

/**
 * A listing over every host goes on past a host it cannot reach: says which (stderr) and gives
 * the exit status, 5 (unreachable) if any was.
 */
export function reportUnreachable(groups: { host: string; error: { message: string } | null }[]): number {
  let status = 0;
  for (const g of groups) {
    if (g.error) {
      process.stderr.write(`hangar: ${g.host}: ${visibleText(g.error.message)}\n`);
      status = 5;
    }
  }
  return status;
}

/**
 * The line for a listing that found nothing: "no sessions; start one with …" only when every host
 * answered. A host that could not be asked (reportUnreachable says why) may have some: then only
 * the hosts that answered are said to have none.
 */
export function printNothingListed(groups: { host: string; error: unknown }[], nothing: string, hint: string): void {
  const answered = groups.filter((g) => !g.error).map((g) => g.host);
  if (answered.length === groups.length) process.stdout.write(`${nothing}; ${hint}\n`);
  else if (answered.length > 0) process.stdout.write(`${nothing} on ${answered.join(', ')}\n`);
}

/** `--json` of a listing over hosts: a host's `error` appears only when there was one. */
export function withoutNullErrors<T extends { error: unknown }>(groups: T[]): (Omit<T, 'error'> | T)[] {
  return groups.map(({ error, ...group }) => (error === null ? group : { ...group, error }));
}
