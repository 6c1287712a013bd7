import { readFileSync } from 'node:fs';
import { DESKTOP_PACKAGE_JSON } from './paths.js';

/**
 * Set by build/cli-bundle to electron/package.json's version when it bundles the command;
 * undefined in the tsc build (then the file is read). Why: reading and parsing the manifest on
 * every command (commander's --version is made with the program) cost a listing ~60 KB of young
 * heap, enough with the rest to bring on a garbage collection while it waits for the core (issue 18).
 */
declare const HANGAR_VERSION: string | undefined;

/** The version of the hangar command (electron/package.json), read without loading anything else. */
export function hangarVersion(): string {
  if (typeof HANGAR_VERSION === 'string') return HANGAR_VERSION;
  const manifest = JSON.parse(readFileSync(DESKTOP_PACKAGE_JSON, 'utf8')) as { version: string };
  return manifest.version;
}
