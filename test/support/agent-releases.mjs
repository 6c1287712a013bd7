// Releases of the hangar-agent package for the installer's tests and benchmark: packed from this
// checkout (build/agent-package/pack.mjs) under any version, published with the real `npm publish`
// to the registry stand-in, and the environment that points npm, the installer and the service
// manager stand-ins at temp dirs instead of this machine's.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { packAgent, stageAgentPackage } from '../../build/agent-package/pack.mjs';

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '..', '..');
export const INSTALL_SH = join(ROOT, 'build', 'install', 'install.sh');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
/** systemctl, loginctl, journalctl, launchctl, useradd and userdel stand-ins, first on PATH. */
export const STANDIN_PATH = ['systemd', 'launchd', 'users'].map((dir) => join(FIXTURES, dir)).join(':');

/** Where the bundled agent dials the relay's agent socket (shared/src/relay/agent-socket.ts). */
const AGENT_SOCKET_CALL = 'relaySocketUrl(agent.relayUrl, "agent")';

/**
 * Packs hangar-agent at `version` into `dir` and publishes it. A `broken` release installs and
 * starts like any other but exits at once with an error, as a release with a startup bug would.
 * A `relayCutOff` release serves locally as usual but dials a relay path that does not exist, as a
 * release whose relay link is broken would: it never shows online on the relay.
 */
export async function publishAgent(registry, dir, version, { broken = false, relayCutOff = false } = {}) {
  let tarball;
  if (broken || relayCutOff) {
    const stage = await stageAgentPackage({ version, outDir: join(dir, `stage-${version}`) });
    const cli = join(stage, 'dist', 'cli.js');
    if (broken) {
      writeFileSync(
        cli,
        "process.stderr.write('hangar-agent: this release is broken on purpose (test)\\n');\nprocess.exit(70);\n",
      );
    } else {
      const bundle = readFileSync(cli, 'utf8');
      if (bundle.split(AGENT_SOCKET_CALL).length !== 2) {
        throw new Error(`the agent bundle no longer has exactly one ${AGENT_SOCKET_CALL}: update this helper`);
      }
      writeFileSync(cli, bundle.replace(AGENT_SOCKET_CALL, `${AGENT_SOCKET_CALL} + "-moved"`));
    }
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: stage });
    tarball = join(dir, JSON.parse(stdout)[0].filename);
  } else {
    tarball = await packAgent({ version, outDir: join(dir, `stage-${version}`) });
  }
  await run('npm', ['publish', tarball, '--registry', registry.url, '--tag', 'latest', '--access', 'public'], {
    env: npmEnv(registry, dir),
  });
  return tarball;
}

/** npm's environment for talking to the stand-in registry: a token for publish, the prebuild mirror. */
export function npmEnv(registry, dir) {
  const npmrc = join(dir, 'npmrc');
  mkdirSync(dir, { recursive: true });
  // The machine's own user config (nodedir, cafile: how native modules build here) plus a token.
  const own = process.env.npm_config_userconfig ?? join(homedir(), '.npmrc');
  const base = existsSync(own) ? readFileSync(own, 'utf8') : '';
  writeFileSync(npmrc, `${base}\n//${new URL(registry.url).host}/:_authToken=standin-token\n`);
  return {
    ...process.env,
    npm_config_userconfig: npmrc,
    npm_config_update_notifier: 'false',
    npm_config_better_sqlite3_binary_host: `${registry.url}/-/prebuilds`,
  };
}

/**
 * The environment of a user running the installer here: HOME in a temp dir, every system path
 * under `root` (HANGAR_INSTALL_PREFIX), the service manager and user tools replaced by stand-ins
 * whose state is in `state`.
 */
export function installEnv({ registry, dir, home, root, state, path = `${STANDIN_PATH}:${process.env.PATH}` }) {
  return {
    ...npmEnv(registry, dir),
    HOME: home,
    PATH: path,
    HANGAR_INSTALL_PREFIX: root,
    HANGAR_STANDIN_ROOT: root,
    HANGAR_STANDIN_STATE: state,
    HANGAR_LOG_LEVEL: 'warn',
  };
}

export function readCalls(state) {
  try {
    return readFileSync(join(state, 'calls.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
  } catch (error) {
    if (error.code === 'ENOENT') return [];
    throw error;
  }
}
