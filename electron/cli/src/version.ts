import { readFileSync } from 'node:fs';
import { DESKTOP_PACKAGE_JSON } from './paths.js';

/** The version of the hangar command (electron/package.json), read without loading anything else. */
export function hangarVersion(): string {
  const manifest = JSON.parse(readFileSync(DESKTOP_PACKAGE_JSON, 'utf8')) as { version: string };
  return manifest.version;
}
