import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_WINDOW_STATE,
  loadWindowState,
  saveWindowState,
  windowStateFile,
} from '../../electron/main/src/window-state.js';
import { ROOT, removeDir, tempDir } from '../support/processes.js';

const require = createRequire(import.meta.url);
const yaml = require('js-yaml') as { load(text: string): unknown };
/** electron-builder's own check, the one `npm run dist` runs first (app-builder-lib exports no narrower entry). */
const { validateConfiguration } = require('app-builder-lib/out/util/config/config.js') as {
  validateConfiguration(config: unknown, debug: { isEnabled: boolean; add(): void }): Promise<void>;
};
const noDebug = { isEnabled: false, add: () => undefined };

describe('packaging config (build/electron-builder.yml)', () => {
  const config = yaml.load(readFileSync(join(ROOT, 'build', 'electron-builder.yml'), 'utf8')) as Record<
    string,
    Record<string, unknown>
  >;

  it("passes electron-builder's schema", async () => {
    await expect(validateConfiguration(config, noDebug)).resolves.toBeUndefined();
  });

  it('a misspelt option is caught by the same check', async () => {
    await expect(
      validateConfiguration({ ...config, mac: { ...config['mac'], targett: 'dmg' } }, noDebug),
    ).rejects.toThrow(/configuration\.mac/);
  });

  it('builds dmg for both Mac architectures, nsis, AppImage and deb, with native modules rebuilt', () => {
    expect(config['mac']!['target']).toEqual([{ target: 'dmg', arch: ['arm64', 'x64'] }]);
    expect(JSON.stringify(config['win']!['target'])).toContain('nsis');
    expect(config['linux']!['target']).toEqual(['AppImage', 'deb']);
    expect(config['npmRebuild']).toBe(true);
    expect(config['files']).toEqual(
      expect.arrayContaining(['core/dist/**', 'cli/dist/**', 'main/dist/**', 'preload/dist/**']),
    );
  });
});

describe('window state', () => {
  let home: string | undefined;
  afterEach(() => {
    if (home) removeDir(home);
  });

  it('comes back as it was saved, and a damaged file means defaults', () => {
    home = tempDir('window');
    const file = windowStateFile(home);
    expect(loadWindowState(file)).toEqual(DEFAULT_WINDOW_STATE);
    saveWindowState(file, { x: 10, y: 20, width: 1000, height: 700, maximized: true });
    expect(loadWindowState(file)).toEqual({ x: 10, y: 20, width: 1000, height: 700, maximized: true });
    writeFileSync(file, '{"width": 10');
    expect(loadWindowState(file)).toEqual(DEFAULT_WINDOW_STATE);
    writeFileSync(file, JSON.stringify({ width: -5, height: 700, maximized: false }));
    expect(loadWindowState(file)).toEqual(DEFAULT_WINDOW_STATE);
  });
});
