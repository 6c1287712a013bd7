import { HangarError, formatBytes, toHangarError, type LinkStream } from '@hangar/shared';
import type Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { agentDb } from '../store/stored-rows.js';

export const DEFAULT_WORKSPACE_LIMIT = 2 * 1024 ** 3;
/** How long the reason an upload failed waits for the client's commit to ask for it. */
const FAILED_UPLOAD_KEPT_MS = 10 * 60 * 1000;

const WorkspaceUse = z.object({ hash: z.string(), lastUsedAt: z.number().int(), bytes: z.number().int() });

interface Upload {
  size: number;
  /** Resolves once the bytes are on disk under their hash, or rejects with why not. */
  done: Promise<void>;
}

/**
 * Content-addressed workspace tarballs: `<data>/workspaces/<sha256>.tar`. An upload is written
 * to a temporary file while it is hashed, and takes its final name only once hash and size
 * match, so a file under a hash's name always holds exactly that content.
 */
export class WorkspaceStore {
  private readonly uploads = new Map<string, Upload>();

  constructor(
    readonly dir: string,
    private readonly db: Database.Database,
    readonly limit: number = DEFAULT_WORKSPACE_LIMIT,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  path(hash: string): string {
    return join(this.dir, `${hash}.tar`);
  }

  has(hash: string): boolean {
    const row = this.db.prepare('SELECT size FROM workspaces WHERE hash = ?').get(hash);
    return row !== undefined && existsSync(this.path(hash));
  }

  /** Marks a workspace as used now, so retention removes the least recently used first. */
  touch(hash: string): void {
    this.db.prepare('UPDATE workspaces SET last_used_at = ? WHERE hash = ?').run(Date.now(), hash);
  }

  /** Refuses an upload that is too large before any byte is accepted. */
  checkSize(size: number): void {
    if (size > this.limit) {
      throw new HangarError(
        'E_WORKSPACE_TOO_LARGE',
        `the workspace is ${formatBytes(size)}, more than this host accepts (${formatBytes(this.limit)}); ` +
          `leave build outputs out of it (.gitignore) or raise the agent's workspace limit`,
        { size, limit: this.limit },
      );
    }
  }

  /**
   * Receives exactly `size` bytes from `stream`. Acks only what is on disk, so a client that
   * sends faster than the disk writes is held back by its window instead of filling memory.
   */
  receive(hash: string, size: number, stream: LinkStream): void {
    this.checkSize(size);
    const temp = join(this.dir, `.upload-${hash}-${randomBytes(6).toString('hex')}`);
    const file = createWriteStream(temp, { mode: 0o600 });
    const hasher = createHash('sha256');
    let received = 0;
    stream.autoAck = false;

    const done = new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (error: HangarError) => {
        if (settled) return;
        settled = true;
        // The temp file goes before the sender hears of the failure. The stream opens it
        // asynchronously: removed before that open completed, it would be created after.
        const discard = () => {
          rmSync(temp, { force: true });
          stream.close({ code: error.code, message: error.message });
          reject(error);
        };
        if (file.closed) discard();
        else {
          file.once('close', discard);
          file.destroy();
        }
      };
      const finish = () => {
        file.end(() => {
          if (settled) return;
          const digest = hasher.digest('hex');
          if (digest !== hash) {
            fail(new HangarError('E_BAD_REQUEST', `workspace upload has sha256 ${digest}, not ${hash}; pack it again`));
            return;
          }
          settled = true;
          try {
            renameSync(temp, this.path(hash));
            const now = Date.now();
            this.db
              .prepare(
                `INSERT INTO workspaces (hash, size, created_at, last_used_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT(hash) DO UPDATE SET last_used_at = excluded.last_used_at`,
              )
              .run(hash, size, now, now);
          } catch (error) {
            rmSync(temp, { force: true });
            reject(toHangarError(error));
            return;
          }
          stream.close({ code: 'upload_complete', message: `received ${size} bytes` });
          resolve();
        });
      };
      file.on('error', (error) => fail(toHangarError(error)));
      stream.onData((data, offset) => {
        if (settled) return;
        if (received + data.length > size) {
          fail(new HangarError('E_BAD_REQUEST', `workspace upload sent more than the announced ${size} bytes`));
          return;
        }
        received += data.length;
        hasher.update(data);
        const end = offset + data.length;
        file.write(data, () => {
          if (!stream.closed) stream.ack(end);
        });
        if (received === size) finish();
      });
      stream.onClose((reason) => {
        if (received < size) {
          fail(
            new HangarError(
              'E_BAD_REQUEST',
              `workspace upload ended after ${received} of ${size} bytes (${reason.message}); upload it again`,
            ),
          );
        }
      });
      if (size === 0) finish();
    });
    this.uploads.set(hash, { size, done });
    const forget = () => {
      if (this.uploads.get(hash)?.done === done) this.uploads.delete(hash);
    };
    // A failure is reported by the commit that follows (it awaits `done`), so it is kept a while.
    done.then(forget, () => setTimeout(forget, FAILED_UPLOAD_KEPT_MS).unref());
  }

  /** Waits for the upload of `hash` (if one is under way) and says whether the content is here. */
  async commit(hash: string): Promise<{ size: number }> {
    const upload = this.uploads.get(hash);
    if (upload) {
      await upload.done.catch((error: unknown) => {
        this.uploads.delete(hash);
        throw error;
      });
    }
    if (!this.has(hash)) {
      throw new HangarError('E_WORKSPACE_MISSING', `no workspace ${hash} on this host; upload it first`);
    }
    return { size: statSync(this.path(hash)).size };
  }

  /** Workspaces by last use, oldest first, for retention. */
  sizes(): { hash: string; lastUsedAt: number; bytes: number }[] {
    const rows = this.db
      .prepare('SELECT hash, last_used_at AS lastUsedAt, size AS bytes FROM workspaces ORDER BY last_used_at')
      .all();
    return agentDb.rows(this.db, 'workspaces', WorkspaceUse, rows);
  }

  remove(hash: string): void {
    rmSync(this.path(hash), { force: true });
    this.db.prepare('DELETE FROM workspaces WHERE hash = ?').run(hash);
  }
}
