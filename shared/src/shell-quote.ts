/** Single-quotes a string for /bin/sh: nothing inside is expanded, a quote in it survives. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
