import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';

export const WindowState = z.object({
  x: z.number().int().optional(),
  y: z.number().int().optional(),
  width: z.number().int().min(400).max(20000),
  height: z.number().int().min(300).max(20000),
  maximized: z.boolean(),
});
export type WindowState = z.infer<typeof WindowState>;

export const DEFAULT_WINDOW_STATE: WindowState = { width: 1280, height: 800, maximized: false };

export function windowStateFile(home: string): string {
  return join(home, 'window-state.json');
}

/** What is read back from disk goes through the same schema; a bad or missing file means defaults. */
export function loadWindowState(file: string): WindowState {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return DEFAULT_WINDOW_STATE; // first launch
  }
  try {
    const parsed = WindowState.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : DEFAULT_WINDOW_STATE;
  } catch {
    return DEFAULT_WINDOW_STATE; // truncated by a crash mid-write: start from defaults
  }
}

/** Written beside and renamed into place, so a crash never leaves half a file. */
export function saveWindowState(file: string, state: WindowState): void {
  const checked = WindowState.parse(state);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, JSON.stringify(checked));
  renameSync(`${file}.tmp`, file);
}
