import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeEnrollToken } from '@hangar/shared';
import { relayStatus } from '../../host-agent/src/relay/index.js';
import { newKey } from '../../relay/test/support/relay-fixture.js';
import { hangarAgent, removeDir, tempDir } from '../support/processes.js';

/** Enrolling a host with `hangar-agent enroll` and the line a device made (relay/PROTOCOL.md). */

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('enrolling a host through a relay', () => {
  it('hangar-agent enroll says what to do with a damaged line or a relay it cannot reach, and stores nothing', async () => {
    const dataDir = tempDir('not-enrolled');
    cleanups.push(() => removeDir(dataDir));
    const damaged = await hangarAgent(['enroll', '--data', dataDir, '--token', 'hgr1_not*base64']);
    expect(damaged.code).toBe(2);
    expect(damaged.stderr).toMatch(/damaged.*copy the whole line/);

    const unreachable = encodeEnrollToken({
      v: 1,
      r: 'http://127.0.0.1:9',
      i: `tok_${randomBytes(16).toString('hex')}`,
      s: randomBytes(32).toString('hex'),
      e: randomBytes(32).toString('hex'),
      d: newKey().publicKey,
    });
    const down = await hangarAgent(['enroll', '--data', dataDir, '--token', unreachable]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/relay unreachable at http:\/\/127\.0\.0\.1:9.*That URL comes from the token line/);
    expect(relayStatus(dataDir)).toBeNull();
  });
});
