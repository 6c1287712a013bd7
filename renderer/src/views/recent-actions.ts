import { z } from 'zod';

const RECENT_KEY = 'hangar.palette.recent';
const Recent = z.array(z.string());
const MAX_RECENT = 8;

/** Ids of palette actions, most recent first. */
export function loadRecent(): string[] {
  let json: unknown = [];
  try {
    json = JSON.parse(localStorage.getItem(RECENT_KEY) ?? '[]');
  } catch {
    // A hand-edited or corrupt entry only costs the recents list.
  }
  const recent = Recent.safeParse(json);
  return recent.success ? recent.data : [];
}

export function rememberRecent(id: string): string[] {
  const next = [id, ...loadRecent().filter((r) => r !== id)].slice(0, MAX_RECENT);
  localStorage.setItem(RECENT_KEY, JSON.stringify(next));
  return next;
}
