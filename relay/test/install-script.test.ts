import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startTestRelay, type TestRelay } from './support/relay-fixture.js';
import { RELAY_BIN } from './support/relay-process.js';
import { useCleanups } from '../../test/support/cleanups.js';

/** The host-agent installer the relay serves at /install.sh for `curl -fsSL …/install.sh | sh -s -- --token …`. */
const INSTALL_SH = new URL('../../build/install/install.sh', import.meta.url);

const cleanups = useCleanups();

async function relayWith(options: { installScript?: string } = {}): Promise<TestRelay> {
  const relay = await startTestRelay(options);
  cleanups.push(() => relay.stop());
  return relay;
}

describe('GET /install.sh', () => {
  it('serves the checkout’s install.sh byte for byte, as a shell script that clients revalidate', async () => {
    const relay = await relayWith();
    const response = await fetch(`${relay.url}/install.sh`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/x-shellscript; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-cache');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(Buffer.from(await response.arrayBuffer()).equals(readFileSync(INSTALL_SH))).toBe(true);

    const etag = response.headers.get('etag')!;
    expect(etag).toMatch(/^"sha256-[\w-]{43}"$/);
    const again = await fetch(`${relay.url}/install.sh`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    const head = await fetch(`${relay.url}/install.sh`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(readFileSync(INSTALL_SH).length));
  });

  it('serves the file given with --install-script instead', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-relay-script-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'install.sh');
    writeFileSync(file, '#!/bin/sh\necho "a packaged installer"\n');
    const relay = await relayWith({ installScript: file });
    const response = await fetch(`${relay.url}/install.sh`);
    expect(await response.text()).toBe('#!/bin/sh\necho "a packaged installer"\n');
  });

  it('refuses to start with an --install-script that does not exist, naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-relay-script-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const missing = join(dir, 'nowhere.sh');
    const result = await promisify(execFile)(
      process.execPath,
      [RELAY_BIN, 'serve', '--listen', '127.0.0.1:0', '--data', dir, '--install-script', missing],
      { timeout: 20_000 },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`--install-script ${missing}: no such file`);
  });
});
