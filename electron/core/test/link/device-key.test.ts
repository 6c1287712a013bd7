import { stat } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { deviceKeyPath, loadOrCreateDeviceKey } from '../../src/identity/device-key.js';
import { Cleanup, tempDir } from './fixture.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('device key', () => {
  it('is made once, readable only by its owner, and reloaded unchanged', async () => {
    const home = await tempDir(cleanup, 'hangar-home-');
    const key = await loadOrCreateDeviceKey(home);
    expect((await stat(deviceKeyPath(home))).mode & 0o777).toBe(0o600);
    expect(key.publicKeyHex).toMatch(/^[0-9a-f]{64}$/);
    expect((await loadOrCreateDeviceKey(home)).publicKeyHex).toBe(key.publicKeyHex);
  });
});
