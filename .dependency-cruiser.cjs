/**
 * The import rules of DESIGN.md, enforced by `npm run lint`. Every rule is an error, each says
 * why, and there are no per-file exceptions.
 */
/** Why each rule holds: dependency-cruiser prints it with every violation. */
const WHY = {
  'shared-is-platform-neutral':
    'shared/ runs everywhere, browser included: no node: modules (its tsconfig has no @types/node either)',
  'shared-imports-nothing-of-ours': 'shared/ is the protocol; it depends on no other package of ours',
  'shared-allow-listed-packages': 'shared/ may use only these npm packages; adding one is a visible change here',
  'lane-imports-nothing-of-ours':
    'lane/ is the native relay of lanes: a leaf package the agent and the core use, depending on none of ours',
  'lane-stays-off-shared-and-renderer':
    'shared/ runs in browsers and the renderer in a sandboxed page: neither can load a native relay',
  'agent-imports-shared-only': 'the host agent runs on hosts; it must not depend on the desktop app',
  'relay-imports-shared-only':
    'the relay is a rendezvous on its own server; it shares only the protocol with the app and the agent',
  'core-imports-shared-only':
    'electron/core is the app core; it reaches hosts over the link, never by importing the agent',
  'cli-uses-core-entry':
    'the CLI is a door onto the core API; it goes through the core entry point only (or door/, the light one that reaches a running core)',
  'main-uses-core-entry': 'electron/main is a thin shell over the core: it goes through the core entry point only',
  'preload-imports-nothing-of-ours':
    'a sandboxed preload can load only electron itself; it repeats the two channel names instead',
  'renderer-never-imports-the-app':
    'the renderer runs in a sandboxed page or a browser: it reaches the core over the API, never by import',
  'renderer-uses-api-entry':
    'renderer/src/api/ is the one place that talks to the core; views and components use its entry only',
  'only-entry-points-across-packages': 'a package is used through its entry point, never its internals',
  'not-to-unresolvable': 'an import that resolves to no file is a typo or a missing dependency, not something to skip',
  'nothing-imports-tests': 'tests depend on the product, never the other way round',
};

/** A forbidden import from files under `from` (a path pattern) to what `to` matches: an error, saying WHY. */
function rule(name, from, to) {
  return { name, comment: WHY[name], severity: 'error', from: from === undefined ? {} : { path: from }, to };
}

/** Paths into the core's sources or build other than its entry point(s), `entry` a pattern. */
const coreBut = (entry) => `^electron/core/(src|dist)/(?!${entry}\\.(js|ts)$)`;
const NPM = ['npm', 'npm-dev', 'npm-optional', 'npm-peer', 'npm-no-pkg', 'npm-unknown'];
const PRODUCT = '^(shared|host-agent|relay|electron)/[^/]+/src|^(shared|lane|host-agent|relay)/src';

module.exports = {
  forbidden: [
    rule('shared-is-platform-neutral', '^shared/src', { dependencyTypes: ['core'] }),
    rule('shared-imports-nothing-of-ours', '^shared/src', { path: '^(host-agent|electron|renderer|relay)/' }),
    rule('shared-allow-listed-packages', '^shared/src', {
      dependencyTypes: NPM,
      pathNot: '(^|/)node_modules/(zod|@noble/curves|@noble/hashes)/',
    }),
    rule('lane-imports-nothing-of-ours', '^lane/src', { path: '^(shared|host-agent|electron|renderer|relay)/' }),
    rule('lane-stays-off-shared-and-renderer', '^(shared|renderer)/src', { path: '^lane/' }),
    rule('agent-imports-shared-only', '^host-agent/src', { path: '^(electron|renderer|relay)/' }),
    rule('relay-imports-shared-only', '^relay/src', { path: '^(host-agent|electron|renderer)/' }),
    rule('core-imports-shared-only', '^electron/core/src', {
      path: '^(host-agent|renderer|relay|electron/(cli|main|preload))/',
    }),
    rule('cli-uses-core-entry', '^electron/cli/src', {
      path: `^(host-agent|renderer|relay)/|${coreBut('(door/)?index')}`,
    }),
    rule('main-uses-core-entry', '^electron/main/src', {
      path: `^(host-agent|renderer|relay|electron/(cli|preload))/|${coreBut('index')}`,
    }),
    rule('preload-imports-nothing-of-ours', '^electron/preload/src', {
      path: '^(shared|host-agent|renderer|relay|electron/(core|cli|main))/',
    }),
    rule('renderer-never-imports-the-app', '^renderer/src', { path: '^(host-agent|relay|electron)/' }),
    rule('renderer-uses-api-entry', '^renderer/src/(?!api/)', { path: '^renderer/src/api/(?!index\\.(ts|tsx)$)' }),
    rule('only-entry-points-across-packages', '^(host-agent|relay|electron|renderer)/', {
      path: '^(shared|lane)/(src|dist)/(?!index\\.(js|d\\.ts|ts)$)',
    }),
    rule('not-to-unresolvable', undefined, { couldNotResolve: true }),
    rule('nothing-imports-tests', PRODUCT, { path: '(^|/)test/' }),
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
