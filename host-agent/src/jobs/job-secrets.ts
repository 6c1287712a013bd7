import { HangarError } from '@hangar/shared';
import type Database from 'better-sqlite3';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { agentDb } from '../store/stored-rows.js';

const KEY_BYTES = 32;
/** GCM's standard nonce; random per value, so one key never sees a nonce twice in practice (2^-48 at 2^24 values). */
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

const SealedSecretRow = z.object({ name: z.string(), nonce: z.instanceof(Buffer), sealed: z.instanceof(Buffer) });

export function secretKeyPath(dataDir: string): string {
  return join(dataDir, 'secret-env.key');
}

/**
 * Job secrets at rest (`hangar run --secret`): each value sealed with AES-256-GCM under a key kept
 * in the data dir (`secret-env.key`, 0600, made on first use), a random nonce per value, and the
 * job id and variable name as associated data, so a sealed value opens only as that variable of
 * that job. What agent.db holds is ciphertext; the job's process gets the values when it starts.
 * The rows go with the job (JobStore.deleteJob, so retention); AgentStore zeroes what is deleted.
 */
export class JobSecrets {
  private key: Buffer | undefined;

  constructor(
    private readonly db: Database.Database,
    private readonly keyFile: string,
    private readonly logger: Logger,
  ) {}

  /** Seals and stores a job's secrets; call inside the transaction that inserts the job. */
  store(jobId: string, secrets: Record<string, string>): void {
    const entries = Object.entries(secrets);
    if (entries.length === 0) return;
    const key = this.sealingKey();
    const insert = this.db.prepare('INSERT INTO job_secrets (job_id, name, nonce, sealed) VALUES (?, ?, ?, ?)');
    for (const [name, value] of entries) {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, nonce);
      cipher.setAAD(associatedData(jobId, name));
      const sealed = Buffer.concat([cipher.update(value, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      insert.run(jobId, name, nonce, sealed);
    }
  }

  /** A job's secrets in the clear, for its process's environment; only when an attempt starts. */
  open(jobId: string): Record<string, string> {
    const rows = agentDb.rows(
      this.db,
      'job_secrets',
      SealedSecretRow,
      this.db.prepare('SELECT name, nonce, sealed FROM job_secrets WHERE job_id = ?').all(jobId),
    );
    if (rows.length === 0) return {};
    const key = this.openingKey();
    if (!key) {
      throw new HangarError(
        'E_INTERNAL',
        `the key that seals job secrets (${this.keyFile}) is gone, so this job's secrets cannot be read; submit the job again`,
      );
    }
    const env: Record<string, string> = {};
    for (const row of rows) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, row.nonce);
        decipher.setAAD(associatedData(jobId, row.name));
        decipher.setAuthTag(row.sealed.subarray(row.sealed.length - TAG_BYTES));
        const plain = Buffer.concat([
          decipher.update(row.sealed.subarray(0, row.sealed.length - TAG_BYTES)),
          decipher.final(),
        ]);
        env[row.name] = plain.toString('utf8');
      } catch (error) {
        throw new HangarError(
          'E_INTERNAL',
          `secret ${row.name} of job ${jobId} does not open with ${this.keyFile} (${(error as Error).message}); ` +
            'the key or the database was changed: submit the job again',
        );
      }
    }
    return env;
  }

  /** The key, made when the first secret is stored, then read once. */
  private sealingKey(): Buffer {
    if (!this.key) this.makeKeyIfMissing();
    return (this.key ??= this.readKey());
  }

  /** Undefined when the key file is gone: what it sealed cannot be opened. */
  private openingKey(): Buffer | undefined {
    if (!this.key && !existsSync(this.keyFile)) return undefined;
    return (this.key ??= this.readKey());
  }

  /** Written whole under another name, then linked into place: nobody reads half a key, two makers keep one. */
  private makeKeyIfMissing(): void {
    if (existsSync(this.keyFile)) return;
    const draft = `${this.keyFile}.${randomBytes(6).toString('hex')}`;
    writeFileSync(draft, randomBytes(KEY_BYTES), { mode: 0o600, flag: 'wx' });
    try {
      linkSync(draft, this.keyFile);
      this.logger.info({ file: this.keyFile }, 'made the key that seals job secrets');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      unlinkSync(draft);
    }
  }

  private readKey(): Buffer {
    const mode = statSync(this.keyFile).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      chmodSync(this.keyFile, 0o600);
      this.logger.warn(
        { file: this.keyFile, mode: mode.toString(8) },
        'the job secrets key was readable by others; made it 0600',
      );
    }
    const key = readFileSync(this.keyFile);
    if (key.length !== KEY_BYTES) {
      throw new HangarError(
        'E_INTERNAL',
        `${this.keyFile} is not a ${KEY_BYTES}-byte key; move it away to start afresh`,
      );
    }
    return key;
  }
}

function associatedData(jobId: string, name: string): Buffer {
  return Buffer.from(`${jobId}\0${name}`, 'utf8');
}
