/** A size for people: binary units, one decimal (`512 B`, `97.7 KiB`, `1.5 GiB`). */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

/** A link's round trip for people: tenths below 10 ms (`0.4 ms`, `3.2 ms`), whole ms above (`48 ms`). */
export function formatRoundTrip(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}
