// The relay's tests against a sanitizer build of the addon: lane/build/asan (run.sh, the default)
// or, with LANE_SANITIZER=tsan, lane/build/tsan (tsan.sh).
import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('../../..', import.meta.url)),
  resolve: {
    alias: {
      '@hangar/shared': fileURLToPath(new URL('../../../shared/src/index.ts', import.meta.url)),
      '@hangar/lane': fileURLToPath(
        new URL(`../../build/${process.env.LANE_SANITIZER || 'asan'}/src/index.ts`, import.meta.url),
      ),
    },
  },
  test: {
    include: ['lane/test/relay.test.ts', 'lane/test/records.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 1,
  },
});
