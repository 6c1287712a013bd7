import { HangarError, parseOrThrow } from '@hangar/shared';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { currentLink, versionsDir, type InstallLayout } from '../install/layout.js';
import { switchSymlink } from '../install/plan.js';
import { processAlive } from '../service/run-file.js';

/** Versions are directory names and npm specs: only what npm's semver allows, nothing path-like. */
export const VERSION_PATTERN = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
export const CHANNEL_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

export function checkVersion(value: string, flag = '--version'): string {
  if (!VERSION_PATTERN.test(value)) {
    throw new HangarError('E_BAD_REQUEST', `${flag} ${JSON.stringify(value)}: expected a version like 1.2.3`);
  }
  return value;
}

export const previousLink = (layout: Pick<InstallLayout, 'home'>) => join(layout.home, 'previous');
export const versionDir = (layout: Pick<InstallLayout, 'home'>, version: string) =>
  join(versionsDir(layout), checkVersion(version));

/** The version a link points at (`versions/<v>`), or undefined when there is no link. */
export function linkedVersion(link: string): string | undefined {
  if (!existsSync(link)) return undefined;
  return basename(readlinkSync(link));
}

export function installedVersions(layout: InstallLayout): string[] {
  if (!existsSync(versionsDir(layout))) return [];
  return readdirSync(versionsDir(layout)).filter((name) => VERSION_PATTERN.test(name));
}

/** The version a package directory holds, read from its package.json. */
export function packageVersion(dir: string): string {
  return readPackageManifest(dir).version;
}

const PackageManifest = z.object({ name: z.string(), version: z.string() });

/** A package directory's package.json, the two fields the agent reads from it. */
export function readPackageManifest(dir: string): z.infer<typeof PackageManifest> {
  const file = join(dir, 'package.json');
  return parseOrThrow(PackageManifest, JSON.parse(readFileSync(file, 'utf8')), file);
}

/**
 * Makes `version` current and remembers the one it replaces as `previous` (for --rollback). Each
 * link is switched with one rename, so the service sees one version or the other, never none.
 */
export function makeCurrent(layout: InstallLayout, version: string): { previous: string | undefined } {
  const previous = linkedVersion(currentLink(layout));
  if (previous && previous !== version) switchSymlink(previousLink(layout), join('versions', previous));
  switchSymlink(currentLink(layout), join('versions', version));
  return { previous };
}

/** After a good update: keep the current and previous versions, delete the rest. */
export function pruneVersions(layout: InstallLayout): string[] {
  const keep = new Set([linkedVersion(currentLink(layout)), linkedVersion(previousLink(layout))]);
  const removed = installedVersions(layout).filter((version) => !keep.has(version));
  for (const version of removed) rmSync(versionDir(layout, version), { recursive: true, force: true });
  return removed;
}

/**
 * One update at a time per install: `<home>/update.lock` holds the updater's pid. A lock whose
 * process is gone (an update killed half way) is taken over.
 */
export function lockUpdates(layout: InstallLayout): { release(): void } {
  const file = join(layout.home, 'update.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return { release: () => rmSync(file, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(file, 'utf8'));
      if (Number.isInteger(holder) && holder > 0 && processAlive(holder)) {
        throw new HangarError('E_EXISTS', `another update is running (pid ${holder}); wait for it to finish`);
      }
      rmSync(file, { force: true });
    }
  }
  throw new HangarError('E_EXISTS', `could not take ${file}; remove it if no update is running`);
}
