/** Plain aligned columns for human output; --json prints the data itself instead. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
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
      process.stderr.write(`hangar: ${g.host}: ${g.error.message}\n`);
      status = 5;
    }
  }
  return status;
}

/** `--json` of a listing over hosts: a host's `error` appears only when there was one. */
export function withoutNullErrors<T extends { error: unknown }>(groups: T[]): (Omit<T, 'error'> | T)[] {
  return groups.map(({ error, ...group }) => (error === null ? group : { ...group, error }));
}
