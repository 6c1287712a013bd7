import { HangarError, type ArtifactInfo, type LinkStream } from '@hangar/shared';
import { createHash } from 'node:crypto';
import { copyFile, lstat, mkdir, open, realpath, stat } from 'node:fs/promises';
import { dirname, join, posix, relative, sep } from 'node:path';
import { AckedBuffers } from './acked-buffers.js';
import { isInside } from './unpack.js';

/** Log and artifact bytes are read from disk this much at a time (bulk frames are 256 KiB). */
const READ_CHUNK = 1024 * 1024;

/**
 * Expands the spec's globs in the workdir and copies each match into `dest`, recording size and
 * sha256. The walk does not follow symlinks (a link to `/` would make `**` crawl the disk), and
 * every match is resolved on disk: one that lands outside the workdir is refused.
 */
export async function collectArtifacts(
  workdir: string,
  globs: readonly string[],
  dest: string,
): Promise<ArtifactInfo[]> {
  if (globs.length === 0) return [];
  const root = await realpath(workdir);
  // Loaded on first use, like tar: an idle agent keeps less resident.
  const { glob } = await import('tinyglobby');
  const matches = await glob([...globs], {
    cwd: root,
    onlyFiles: true,
    dot: true,
    followSymbolicLinks: false,
    expandDirectories: false,
  });
  // A pattern without wildcards names one path: look at it directly, so a symlink there is
  // refused out loud rather than silently skipped by the glob walk, which never follows links.
  for (const literal of globs.filter((g) => !/[*?[\]{}()!]/.test(g))) {
    if ((await lstatOrUndefined(join(root, literal)))?.isSymbolicLink()) matches.push(posix.normalize(literal));
  }
  const artifacts: ArtifactInfo[] = [];
  for (const match of [...new Set(matches)].sort()) {
    const real = await realpath(join(root, match));
    const path = relative(root, join(root, match)).split(sep).join('/');
    if (!isInside(root, real) || !isInside(root, join(root, match))) {
      throw new HangarError(
        'E_ARTIFACT_UNSAFE',
        `artifact "${match}" resolves to ${real}, outside the job's workdir; it was not collected`,
        { path: match },
      );
    }
    if (!(await stat(real)).isFile()) continue;
    const target = join(dest, path);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(real, target);
    artifacts.push({ path, ...(await hashFile(target)) });
  }
  return artifacts;
}

async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Size and sha256 of a file, read READ_CHUNK at a time into one buffer: a read stream's fresh
 * 64 KiB buffer per read (external memory) made the agent collect whole-heap several times while
 * a job's big artifacts were hashed.
 */
export async function hashFile(path: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  const file = await open(path, 'r');
  const buffer = Buffer.allocUnsafeSlow(READ_CHUNK);
  let size = 0;
  try {
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, READ_CHUNK, size);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    await file.close();
  }
  return { size, sha256: hash.digest('hex') };
}

/**
 * Sends a file's bytes from `from` on a stream, reading only while the stream has room, then
 * closes it with `artifact_end`. A stream closed by the peer stops the reading.
 */
export async function streamFile(path: string, stream: LinkStream, from = 0): Promise<void> {
  let wake: (() => void) | undefined;
  let closed = stream.closed;
  const drain = stream.onDrain(() => wake?.());
  const close = stream.onClose(() => {
    closed = true;
    wake?.();
  });
  const file = await open(path, 'r');
  // Buffers go round once the peer acked their bytes (a window's worth, a few MiB).
  const buffers = new AckedBuffers(stream, READ_CHUNK, 8);
  try {
    let offset = from;
    while (!closed) {
      const buffer = buffers.take();
      const { bytesRead } = await file.read(buffer, 0, READ_CHUNK, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
      if (closed) return;
      const room = stream.write(buffer.subarray(0, bytesRead), { transfer: true });
      buffers.written(buffer);
      if (!room) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    }
    stream.close({ code: 'artifact_end', message: `sent ${offset} bytes` });
  } finally {
    drain.dispose();
    close.dispose();
    buffers.dispose();
    await file.close();
  }
}
