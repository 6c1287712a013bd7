import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  resolve: {
    alias: {
      '@hangar/shared': fileURLToPath(new URL('./shared/src/index.ts', import.meta.url)),
    },
  },
  test: {
    include: [
      '{shared,host-agent,relay,electron/core,electron/cli}/test/**/*.test.ts',
      'renderer/test/**/*.test.tsx',
      'test/**/*.test.ts',
    ],
    exclude: ['**/node_modules/**', '**/dist/**', 'test/bench/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Fails a test file that leaves a process, a tmux server or a DisposableStore behind.
    setupFiles: ['test/support/leak-check.ts'],
  },
});
