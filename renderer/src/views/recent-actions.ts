const RECENT_KEY = 'hangar.palette.recent';
const MAX_RECENT = 8;

/** Ids of palette actions, most recent first. */
export function loadRecent(): string[] {
  try {
    const value: unknown = JSON.parse(localStorage.getItem(RECENT_KEY) ?? '[]');
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  } catch {
    // A hand-edited or corrupt entry only costs the recents list.
    return [];
  }
}

export function rememberRecent(id: string): string[] {
  const next = [id, ...loadRecent().filter((r) => r !== id)].slice(0, MAX_RECENT);
  localStorage.setItem(RECENT_KEY, JSON.stringify(next));
  return next;
}
