import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentStore, agentDbPath } from '../../src/store/db.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import {
  consumeCodeAndPair,
  findPairedDevice,
  latestPairingCode,
  recordFailedAttempt,
} from '../../src/store/pairing.js';
import { issuePairingCode, selectPairingCode, PAIRING_CODE_TTL_MS } from '../../src/link/pairing.js';
import { useCleanups } from '../../../test/support/cleanups.js';

const cleanups = useCleanups();

async function openTemp(): Promise<{ store: AgentStore; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-store-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const store = AgentStore.open(dir);
  cleanups.push(() => store.dispose());
  return { store, dir };
}

describe('agent store', () => {
  it('runs migrations once, in WAL mode, in a file only the owner can read', async () => {
    const { store, dir } = await openTemp();
    expect(store.schemaVersion).toBe(MIGRATIONS.at(-1)!.version);
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect((await stat(agentDbPath(dir))).mode & 0o777).toBe(0o600);
    store.dispose();
    const again = AgentStore.open(dir);
    cleanups.push(() => again.dispose());
    expect(again.schemaVersion).toBe(MIGRATIONS.at(-1)!.version);
  });

  it('a code issued by another process (the CLI) is seen by the server at once', async () => {
    const { store, dir } = await openTemp();
    const cli = AgentStore.open(dir);
    const issued = issuePairingCode(cli);
    cli.dispose();
    const selected = selectPairingCode(store, Date.now());
    expect(selected?.state).toBe('active');
    expect(issued.code).toMatch(/^\d{3}-\d{3}$/);
    expect(selected?.row.code).toBe(issued.code.replace('-', ''));
    expect(issued.expiresAt - Date.now()).toBeLessThanOrEqual(PAIRING_CODE_TTL_MS);
  });

  it('a new code revokes older unused ones; used and expired codes are remembered for an hour', async () => {
    const { store } = await openTemp();
    const t0 = 1_000_000_000_000;
    issuePairingCode(store, { now: () => t0 });
    const second = issuePairingCode(store, { now: () => t0 + 1 });
    expect(latestPairingCode(store)?.code).toBe(second.code.replace('-', ''));
    expect(store.db.prepare('SELECT COUNT(*) AS n FROM pairing_codes WHERE revoked_at IS NOT NULL').get()).toEqual({
      n: 1,
    });

    const row = latestPairingCode(store)!;
    expect(selectPairingCode(store, t0 + PAIRING_CODE_TTL_MS + 5)?.state).toBe('expired');
    expect(selectPairingCode(store, t0 + PAIRING_CODE_TTL_MS + 61 * 60 * 1000)).toBeUndefined();
    expect(consumeCodeAndPair(store, row.id, { public_key: 'ab', name: 'laptop' }, t0 + 10)).toBe(true);
    expect(consumeCodeAndPair(store, row.id, { public_key: 'cd', name: 'other' }, t0 + 11)).toBe(false);
    expect(findPairedDevice(store, 'ab')?.name).toBe('laptop');
    expect(findPairedDevice(store, 'cd')).toBeUndefined();
    expect(selectPairingCode(store, t0 + 20)?.state).toBe('used');
  });

  it('burns a code at the fifth wrong guess', async () => {
    const { store } = await openTemp();
    issuePairingCode(store);
    const { id } = latestPairingCode(store)!;
    for (let i = 1; i <= 4; i += 1) expect(recordFailedAttempt(store, id, Date.now(), 5).burned_at).toBeNull();
    expect(recordFailedAttempt(store, id, Date.now(), 5).burned_at).not.toBeNull();
    expect(selectPairingCode(store, Date.now())?.state).toBe('burned');
  });
});
