import { HangarError } from '@hangar/shared';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** How install is said when restic is not on the host agent's PATH. */
export const RESTIC_INSTALL =
  "restic is not installed on this host (or not on the agent's PATH): install it (Debian/Ubuntu: sudo apt-get install restic; Fedora: sudo dnf install restic; macOS: brew install restic), then try again";

export interface ResticOptions {
  /** The restic binary (default: restic on PATH). */
  bin: string;
  repository: string;
  /** The 0600 file with the repository's password: restic reads it, nothing else does. */
  passwordFile: string;
  cacheDir: string;
}

export interface ResticResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** How long a stopped restic has to end (remove its lock, finish writing) before it is killed. */
export const RESTIC_STOP_MS = 10_000;

/** stderr kept for the error message: restic's last lines are what went wrong. */
const MAX_STDERR_CHARS = 16 * 1024;

/**
 * Runs restic on the repository. The password goes by file (RESTIC_PASSWORD_FILE), never in an
 * argument or the environment of anything else; a RESTIC_PASSWORD or RESTIC_PASSWORD_COMMAND in the
 * agent's own environment is dropped so that the file is the one key. Credentials of a remote
 * repository (AWS_*, RESTIC_REST_*, ssh's config) come from the agent's environment as they are.
 * `onLine`: each line of stdout as it comes (restic's --json messages).
 * `kill`: SIGINT (restic stops and removes its lock), then SIGKILL if it has not ended within
 * `stopMs`; resolves once restic has exited, so that nothing still writes the repository after.
 */
export function runRestic(
  options: ResticOptions,
  args: readonly string[],
  onLine?: (line: string) => void,
  stopMs = RESTIC_STOP_MS,
): { done: Promise<ResticResult>; kill: () => Promise<void> } {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RESTIC_REPOSITORY: options.repository,
    RESTIC_PASSWORD_FILE: options.passwordFile,
    RESTIC_CACHE_DIR: options.cacheDir,
  };
  delete env['RESTIC_PASSWORD'];
  delete env['RESTIC_PASSWORD_COMMAND'];
  delete env['RESTIC_REPOSITORY_FILE'];
  const child = spawn(options.bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    if (onLine) onLine(line);
    else if (stdout.length < 16 * 1024 * 1024) stdout += `${line}\n`;
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-MAX_STDERR_CHARS);
  });
  const done = new Promise<ResticResult>((resolve, reject) => {
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') reject(new HangarError('E_BACKUP_UNAVAILABLE', RESTIC_INSTALL));
      else reject(error);
    });
    // 'close', not 'exit': every line of stdout has been read by then.
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  const kill = async (): Promise<void> => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), stopMs);
    await exited;
    clearTimeout(timer);
  };
  return { done, kill };
}

/** `restic version`'s number, or null when restic is not there. */
export async function resticVersion(bin: string): Promise<string | null> {
  try {
    const result = await runRestic({ bin, repository: '', passwordFile: '', cacheDir: '' }, ['version']).done;
    return /restic (\S+)/.exec(result.stdout)?.[1] ?? null;
  } catch (error) {
    if (error instanceof HangarError && error.code === 'E_BACKUP_UNAVAILABLE') return null;
    throw error;
  }
}

/** restic said the repository is not there (yet): `restic init` makes it. */
export function isMissingRepository(result: ResticResult): boolean {
  return /Is there a repository at the following location\?|unable to open config file|does not exist/.test(
    result.stderr,
  );
}

/**
 * What went wrong, from restic's exit and stderr, said with what to do: the common failures by
 * name (a lock, the password, a full disk, the repository unreachable), else restic's own words.
 */
export function resticFailure(what: string, result: ResticResult, repository: string, dataDir: string): HangarError {
  const said = result.stderr.trim();
  // The agent's data directory is named in what to run: `hangar-agent backup unlock` alone reads
  // ~/.hangar-agent, which is not the data of `npm start`'s agent (~/.hangar/agent) nor of a --data one.
  const last = said.split('\n').slice(-4).join(' ').trim();
  let message: string;
  if (/repository is already locked|unable to create lock/i.test(said)) {
    message = `${what}: the repository ${repository} is locked by another restic run. If none is running (one was killed), remove the stale lock on the host: hangar-agent backup unlock --data ${dataDir}`;
  } else if (/wrong password or no key found/i.test(said)) {
    message = `${what}: the repository ${repository} does not open with this host's backup key (it was made with another). Put that repository's key in ${join(dataDir, 'backups', 'password')} on the host, or back up to a new repository (hangar backup set … --repo …)`;
  } else if (/no space left on device/i.test(said)) {
    message = `${what}: the disk holding ${repository} is full: free space there, or keep fewer snapshots (hangar backup set … --keep-last N) and run again`;
  } else if (/permission denied/i.test(said) && result.code !== 3) {
    message = `${what}: permission denied (${last}): the agent's user must be able to read what it backs up and write the repository`;
  } else {
    message = `${what}: restic exited ${result.code}${last ? `: ${last}` : ''}`;
  }
  return new HangarError('E_BACKUP_FAILED', message, { exit_code: result.code });
}
