import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

/**
 * Files run alone, after the rest: the NAT lab (its TURN case once failed to link within 60 s beside
 * another file), and the mesh tests (mesh-recovery and mesh-upgrade run together once saw a tick
 * missing or doubled; alone they pass).
 * The Chromium files run with the rest: each asserts only on what it started itself (its own
 * HANGAR_HOME and agent; previews-ui names its Vite's port and pid, and the ports its own core
 * serves), so another file's servers in the host's list of listening ports change none of their
 * checks.
 */
const ALONE = [
  'test/e2e/webrtc-natlab.test.ts',
  'test/e2e/mesh-recovery.test.ts',
  'test/e2e/mesh-upgrade.test.ts',
  'test/e2e/mesh-relay-down.test.ts',
  'test/e2e/mesh-udp-blocked.test.ts',
];

export default defineConfig({
  resolve: {
    alias: {
      '@hangar/shared': fileURLToPath(new URL('./shared/src/index.ts', import.meta.url)),
      '@hangar/lane': fileURLToPath(new URL('./lane/src/index.ts', import.meta.url)),
    },
  },
  test: {
    exclude: ['**/node_modules/**', '**/dist/**', 'test/bench/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two files at a time even on 2 cores: the end-to-end files mostly wait on processes they
    // start (agents, relays, tmux, sshd), so two at once take ~0.6 of the time one at a time did.
    // The order files start in costs nothing here: in a clean clone (no results cache) vitest starts
    // the largest file first, and with the 200 files' durations of a CI run that keeps both workers
    // busy to within a second of each other, as longest-first would (node build/test-schedule.mjs
    // <results.json>). Wall time beyond the files' sum / 2 is each file's worker start and imports.
    // A third worker did not pay here: 9 end-to-end files took 379 s on 3 workers against 372 s on 2
    // (the files' own durations summed 991 s against 640 s: three at once on 2 cores stretch each).
    maxWorkers: 2,
    // Fails a test file that leaves a process, a tmux server or a DisposableStore behind.
    setupFiles: ['test/support/leak-check.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: [
            '{shared,lane,host-agent,relay,electron/core,electron/cli}/test/**/*.test.ts',
            'renderer/test/**/*.test.tsx',
            'test/**/*.test.ts',
          ],
          exclude: ['**/node_modules/**', '**/dist/**', 'test/bench/**', ...ALONE],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: { name: 'alone', include: ALONE, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
