import { HangarError, type ArtifactInfo, type LinkStream } from '@hangar/shared';
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, read, realpathSync } from 'node:fs';
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
        `artifact "${match}" resolves to ${real}, outside the job's workdir; it was not collected ` +
          '(an artifact is a file inside the workdir: have the job copy the file into its workdir, not link to it)',
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
 * Opens the agent's copy of a recorded artifact for sending (`artifact.fetch`, the `artifact`
 * lane): the regular file collected at the job's end, at its recorded size. What took its place
 * on disk since is refused with E_ARTIFACT_UNSAFE before a byte is read: a symlink (O_NOFOLLOW on
 * the file; its folders are checked by realpath), a FIFO or device (O_NONBLOCK, so opening a FIFO
 * does not wait for a writer with the event loop stuck in open()), a file of another size. The
 * caller closes the fd. (A hard link in its place is not told apart: the folder is the agent's
 * own, 0700, which a job's sandbox never mounts; the client's sha256 check still catches it.)
 */
export function openArtifactCopy(artifactsDir: string, info: ArtifactInfo, jobId: string): number {
  const file = join(artifactsDir, info.path);
  const unsafe = (why: string) =>
    new HangarError(
      'E_ARTIFACT_UNSAFE',
      `artifact "${info.path}" on the host is not the regular file the agent collected (${why}); ` +
        `run the job again to collect it anew: hangar retry ${jobId}`,
      { path: info.path },
    );
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw unsafe('a symlink is in its place');
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new HangarError(
        'E_NOT_FOUND',
        `artifact "${info.path}" is gone from the host (pruned?); run the job again to collect it anew: hangar retry ${jobId}`,
      );
    }
    throw error;
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw unsafe('not a regular file');
    if (stat.size !== info.size) throw unsafe(`${stat.size} bytes, recorded ${info.size}`);
    if (realpathSync(file) !== join(realpathSync(artifactsDir), info.path))
      throw unsafe('a folder of its path is a symlink');
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/**
 * Sends a file's bytes from `from` on a stream, reading only while the stream has room, then
 * closes it with `artifact_end`. A stream closed by the peer stops the reading. `file` is a path
 * (the bench's), or what gives the fd (openArtifactCopy, as artifact.fetch does); closed here.
 */
export async function streamFile(file: string | (() => number), stream: LinkStream, from = 0): Promise<void> {
  let wake: (() => void) | undefined;
  let closed = stream.closed;
  const drain = stream.onDrain(() => wake?.());
  const close = stream.onClose(() => {
    closed = true;
    wake?.();
  });
  let fd: number;
  try {
    fd = typeof file === 'string' ? openSync(file, 'r') : file();
  } catch (error) {
    drain.dispose();
    close.dispose();
    throw error;
  }
  // Buffers go round once the peer acked their bytes (a window's worth, a few MiB).
  const buffers = new AckedBuffers(stream, READ_CHUNK, 8);
  try {
    let offset = from;
    while (!closed) {
      const buffer = buffers.take();
      const bytesRead = await readAt(fd, buffer, offset);
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
    closeSync(fd);
  }
}

/** One read of up to READ_CHUNK bytes at `position` (off the event loop, as FileHandle.read). */
function readAt(fd: number, buffer: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    read(fd, buffer, 0, READ_CHUNK, position, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead))),
  );
}
