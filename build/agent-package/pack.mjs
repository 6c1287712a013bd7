#!/usr/bin/env node
// Builds the publishable `hangar-agent` npm package and packs it with `npm pack`.
//
// Why a bundle: in this repository the agent is the private workspace @hangar/host-agent, and it
// imports the private workspace @hangar/shared. Publishing shared too would make the protocol a
// public package with its own versioning for no user's benefit, and bundleDependencies of a
// workspace symlink is fragile across npm versions. So the agent and shared (and every pure-JS
// dependency) are bundled by esbuild into dist/, and the published package depends only on its
// native modules: better-sqlite3 and node-pty, which must be built or fetched for the host's Node
// (prebuild-install, else node-gyp), and node-datachannel (WebRTC), whose binary npm fetches as an
// optional per-platform package. Fewer packages to fetch also makes the install line faster.
// The native relay of lanes (@hangar/lane, private like shared) cannot come from the registry: its C
// sources and binding.gyp are staged into the package, whose own install script builds them with
// node-gyp where it is installed (as node-pty builds where it has no prebuilt binary). The bundle
// loads build/Release/lane.node from the package root; where the build fails the install goes on
// and lanes report themselves unavailable (the agent keeps to the link).
// The workspace keeps its name and its tsc output, so the desktop app's link to it is unchanged.
//
//   node build/agent-package/pack.mjs [--version 1.2.3] [--out DIR]
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const AGENT = join(ROOT, 'host-agent');
// node-datachannel: the WebRTC link; its binary comes as an optional per-platform package.
const NATIVE = ['better-sqlite3', 'node-pty', 'node-datachannel'];
const LANE = join(ROOT, 'lane');
/** Builds the lanes' relay on the host; a host without a compiler still gets a working agent. */
const LANE_INSTALL =
  'node-gyp rebuild || node -e "console.warn(\'hangar-agent: the native relay of lanes did not build; the agent relays over its link\')"';

/**
 * Writes the package's files into `<outDir>/hangar-agent/` and returns that directory.
 * `version` defaults to host-agent/package.json's; it is also what the agent reports.
 */
export async function stageAgentPackage({ version, outDir = join(ROOT, 'dist-agent') } = {}) {
  const workspace = JSON.parse(readFileSync(join(AGENT, 'package.json'), 'utf8'));
  const packageVersion = version ?? workspace.version;
  const stage = join(outDir, 'hangar-agent');
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'bin'), { recursive: true });

  await build({
    // make-tls-cert runs in a worker thread (identity/tls.ts finds it next to the entry).
    entryPoints: { cli: join(AGENT, 'src/cli.ts'), 'make-tls-cert': join(AGENT, 'src/identity/make-tls-cert.ts') },
    outdir: join(stage, 'dist'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: [...NATIVE, 'bufferutil', 'utf-8-validate'],
    alias: { '@hangar/shared': join(ROOT, 'shared/src/index.ts'), '@hangar/lane': join(LANE, 'src/index.ts') },
    // Bundled CommonJS dependencies call require(); an ES module has none of its own.
    banner: {
      js: "import { createRequire as __hangarRequire } from 'node:module';\nconst require = __hangarRequire(import.meta.url);",
    },
    plugins: [reportedVersion(packageVersion)],
    legalComments: 'linked',
    logLevel: 'warning',
  });
  copyFileSync(join(AGENT, 'bin', 'hangar-agent.js'), join(stage, 'bin', 'hangar-agent.js'));
  // The relay's sources; dist/ is one level down, as lane/src is, so the bundle finds build/Release/lane.node.
  copyFileSync(join(LANE, 'binding.gyp'), join(stage, 'binding.gyp'));
  cpSync(join(LANE, 'src', 'native'), join(stage, 'src', 'native'), { recursive: true });

  const manifest = {
    name: 'hangar-agent',
    version: packageVersion,
    description: 'The Hangar host agent: persistent tmux terminals, build jobs and previews for the Hangar app',
    type: 'module',
    bin: { 'hangar-agent': 'bin/hangar-agent.js' },
    files: ['bin', 'dist', 'binding.gyp', 'src/native'],
    engines: { node: '>=20' },
    os: ['linux', 'darwin'],
    gypfile: true,
    scripts: { install: LANE_INSTALL },
    dependencies: Object.fromEntries(NATIVE.map((name) => [name, workspace.dependencies[name]])),
  };
  writeFileSync(join(stage, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
  writeFileSync(
    join(stage, 'README.md'),
    '# hangar-agent\n\nThe host agent of Hangar. Install it as a service with `hangar-agent install`; ' +
      'see `hangar-agent --help`.\n',
  );
  return stage;
}

/** Stages the package and runs `npm pack` on it; returns the tarball's path. */
export async function packAgent(options = {}) {
  const outDir = options.outDir ?? join(ROOT, 'dist-agent');
  const stage = await stageAgentPackage({ ...options, outDir });
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', outDir], { cwd: stage, encoding: 'utf8' });
  return join(outDir, JSON.parse(out)[0].filename);
}

/** host-agent/src/version.ts holds the version the agent reports; the package's version replaces it. */
function reportedVersion(version) {
  return {
    name: 'hangar-reported-version',
    setup(builder) {
      builder.onLoad({ filter: /host-agent[\\/]src[\\/]version\.ts$/ }, () => ({
        contents: `export const AGENT_VERSION = ${JSON.stringify(version)};\n`,
        loader: 'ts',
      }));
    },
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { version: { type: 'string' }, out: { type: 'string' } } });
  const tarball = await packAgent({
    ...(values.version ? { version: values.version } : {}),
    ...(values.out ? { outDir: resolve(values.out) } : {}),
  });
  process.stdout.write(`${tarball}\n`);
}
