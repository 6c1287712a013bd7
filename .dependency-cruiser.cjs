/**
 * The import rules of DESIGN.md, enforced by `npm run lint`. Every rule is an error, each says
 * why, and there are no per-file exceptions.
 */
module.exports = {
  forbidden: [
    {
      name: 'shared-is-platform-neutral',
      comment: 'shared/ runs everywhere, browser included: no node: modules (its tsconfig has no @types/node either)',
      severity: 'error',
      from: { path: '^shared/src' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'shared-imports-nothing-of-ours',
      comment: 'shared/ is the protocol; it depends on no other package of ours',
      severity: 'error',
      from: { path: '^shared/src' },
      to: { path: '^(host-agent|electron|renderer|relay)/' },
    },
    {
      name: 'shared-allow-listed-packages',
      comment: 'shared/ may use only these npm packages; adding one is a visible change here',
      severity: 'error',
      from: { path: '^shared/src' },
      to: {
        dependencyTypes: ['npm', 'npm-dev', 'npm-optional', 'npm-peer', 'npm-no-pkg', 'npm-unknown'],
        pathNot: '(^|/)node_modules/(zod|@noble/curves|@noble/hashes)/',
      },
    },
    {
      name: 'agent-imports-shared-only',
      comment: 'the host agent runs on hosts; it must not depend on the desktop app',
      severity: 'error',
      from: { path: '^host-agent/src' },
      to: { path: '^(electron|renderer|relay)/' },
    },
    {
      name: 'relay-imports-shared-only',
      comment: 'the relay is a rendezvous on its own server; it shares only the protocol with the app and the agent',
      severity: 'error',
      from: { path: '^relay/src' },
      to: { path: '^(host-agent|electron|renderer)/' },
    },
    {
      name: 'core-imports-shared-only',
      comment: 'electron/core is the app core; it reaches hosts over the link, never by importing the agent',
      severity: 'error',
      from: { path: '^electron/core/src' },
      to: { path: '^(host-agent|renderer|relay|electron/(cli|main|preload))/' },
    },
    {
      name: 'cli-uses-core-entry',
      comment:
        'the CLI is a door onto the core API; it goes through the core entry point only (or door/, the light one that reaches a running core)',
      severity: 'error',
      from: { path: '^electron/cli/src' },
      to: { path: '^(host-agent|renderer|relay)/|^electron/core/(src|dist)/(?!(door/)?index\\.(js|ts)$)' },
    },
    {
      name: 'main-uses-core-entry',
      comment: 'electron/main is a thin shell over the core: it goes through the core entry point only',
      severity: 'error',
      from: { path: '^electron/main/src' },
      to: {
        path: '^(host-agent|renderer|relay|electron/(cli|preload))/|^electron/core/(src|dist)/(?!index\\.(js|ts)$)',
      },
    },
    {
      name: 'preload-imports-nothing-of-ours',
      comment: 'a sandboxed preload can load only electron itself; it repeats the two channel names instead',
      severity: 'error',
      from: { path: '^electron/preload/src' },
      to: { path: '^(shared|host-agent|renderer|relay|electron/(core|cli|main))/' },
    },
    {
      name: 'renderer-never-imports-the-app',
      comment: 'the renderer runs in a sandboxed page or a browser: it reaches the core over the API, never by import',
      severity: 'error',
      from: { path: '^renderer/src' },
      to: { path: '^(host-agent|relay|electron)/' },
    },
    {
      name: 'renderer-uses-api-entry',
      comment: 'renderer/src/api/ is the one place that talks to the core; views and components use its entry only',
      severity: 'error',
      from: { path: '^renderer/src/(?!api/)' },
      to: { path: '^renderer/src/api/(?!index\\.(ts|tsx)$)' },
    },
    {
      name: 'only-entry-points-across-packages',
      comment: 'a package is used through its entry point, never its internals',
      severity: 'error',
      from: { path: '^(host-agent|relay|electron|renderer)/' },
      to: { path: '^shared/(src|dist)/(?!index\\.(js|d\\.ts|ts)$)' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'an import that resolves to no file is a typo or a missing dependency, not something to skip',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'nothing-imports-tests',
      comment: 'tests depend on the product, never the other way round',
      severity: 'error',
      from: { path: '^(shared|host-agent|relay|electron)/[^/]+/src|^(shared|host-agent|relay)/src' },
      to: { path: '(^|/)test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Packages resolve to their sources through tsconfig.lint.json's paths, so built output is skipped.
    exclude: { path: '(^|/)dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.lint.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'types', 'default'],
      extensions: ['.ts', '.tsx', '.js', '.d.ts'],
    },
  },
};
