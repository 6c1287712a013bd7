import type Database from 'better-sqlite3';
import { HangarError, HostName, HostRecord, parseOrThrow, parseStored } from '@hangar/shared';
import { z } from 'zod';
import { coreDb } from '../state/stored-rows.js';

const Row = z.object({
  name: z.string(),
  address: z.string(),
  agent_key: z.string(),
  cert_fingerprint: z.string(),
  embedded: z.number().int(),
  added_at: z.number().int(),
  /** Added by a later migration: null until the link to the host is first up. */
  last_seen: z.number().int().nullable(),
});

/** The hosts this device is paired with, and the keys pinned for each (like SSH known_hosts). */
export class HostRegistry {
  constructor(private readonly db: Database.Database) {}

  list(): HostRecord[] {
    return this.rows().map((row) => this.fromRow(row));
  }

  /** Every host with when this computer last had a link to it (null: never, or before it was recorded). */
  listSeen(): (HostRecord & { last_seen: number | null })[] {
    return this.rows().map((row) => ({ ...this.fromRow(row), last_seen: row.last_seen }));
  }

  /** The link to `name` was up at `at`. */
  touch(name: string, at: number): void {
    this.db.prepare('UPDATE hosts SET last_seen = ? WHERE name = ?').run(at, name);
  }

  find(name: string): HostRecord | undefined {
    const row = coreDb.row(this.db, 'hosts', Row, this.db.prepare('SELECT * FROM hosts WHERE name = ?').get(name));
    return row === undefined ? undefined : this.fromRow(row);
  }

  get(name: string): HostRecord {
    const host = this.find(name);
    if (host) return host;
    const known = this.list().map((h) => h.name);
    throw new HangarError(
      'E_HOST_NOT_FOUND',
      `no host named "${name}"` +
        (known.length > 0 ? ` (known: ${known.join(', ')})` : '') +
        `; add one with: hangar hosts add ${name} <address> --code <pairing code>`,
    );
  }

  /** Inserts or, with `replace`, overwrites a host record. */
  save(record: HostRecord, options: { replace?: boolean } = {}): void {
    const host = parseOrThrow(HostRecord, record, 'host record');
    if (!options.replace && this.find(host.name)) {
      throw new HangarError(
        'E_HOST_EXISTS',
        `a host named "${host.name}" already exists; remove it first with: hangar hosts rm ${host.name}`,
      );
    }
    this.db
      .prepare(
        `INSERT OR REPLACE INTO hosts (name, address, agent_key, cert_fingerprint, embedded, added_at)
         VALUES (@name, @address, @agent_key, @cert_fingerprint, @embedded, @added_at)`,
      )
      .run({ ...host, embedded: host.embedded ? 1 : 0 });
  }

  updateAddress(name: string, address: string): void {
    this.db.prepare('UPDATE hosts SET address = ? WHERE name = ?').run(address, name);
  }

  rename(name: string, newName: string): void {
    this.get(name);
    if (name === newName) return;
    if (this.find(newName)) {
      throw new HangarError(
        'E_HOST_EXISTS',
        `a host named "${newName}" already exists; pick another name or remove it first with: hangar hosts rm ${newName}`,
      );
    }
    this.db.prepare('UPDATE hosts SET name = ? WHERE name = ?').run(newName, name);
  }

  remove(name: string): void {
    parseOrThrow(HostName, name, 'host name');
    const result = this.db.prepare('DELETE FROM hosts WHERE name = ?').run(name);
    if (result.changes === 0) this.get(name);
  }

  private rows(): z.output<typeof Row>[] {
    return coreDb.rows(
      this.db,
      'hosts',
      Row,
      this.db.prepare('SELECT * FROM hosts ORDER BY embedded DESC, name').all(),
    );
  }

  /** What is read back from disk is parsed with the same schema as what came in. */
  private fromRow({ last_seen: _, ...row }: z.output<typeof Row>): HostRecord {
    return parseStored(
      HostRecord,
      { ...row, embedded: row.embedded === 1 },
      {
        file: this.db.name,
        what: `host "${row.name}"`,
        record: row.name,
        remedy: `remove it and pair it again: hangar hosts rm ${row.name} && hangar hosts add ${row.name} <address> --code <pairing code>`,
      },
    );
  }
}
