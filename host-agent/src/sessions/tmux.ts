import { execFile } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { HangarError, tmuxSocketNameOf } from '@hangar/shared';

/** Session names on our socket; anything else there is not ours and is ignored. */
export const SESSION_PREFIX = 'hangar-';

/** Upper bound for any one tmux command: tmux answers in milliseconds; a hang means a wedged server. */
const TMUX_TIMEOUT_MS = 10_000;

/**
 * One tmux server per agent data dir. A socket *name* (-L), not a path (-S): socket paths are
 * limited to 104 bytes on macOS and a data dir under ~/Library would exceed that.
 */
export function tmuxSocketName(dataDir: string): string {
  return tmuxSocketNameOf(realpathSync(dataDir));
}

/** The environment tmux runs in: never inside the user's own tmux (TMUX would make it nest/refuse). */
export function tmuxEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.TMUX;
  delete env.TMUX_PANE;
  return env;
}

/** tmux expands formats in some arguments (-c start-directory, pipe-pane's command): `#` must be doubled. */
export function escapeFormat(value: string): string {
  return value.replaceAll('#', '##');
}

/**
 * tmux splits its argv into commands at any argument that *ends* in `;` (so `find … {} ;` would be
 * cut), whatever option or command it belongs to: an `-e A=x;` or a `-c` directory too. An
 * argument ending in `\;` becomes one ending in `;`, so that is how we pass it through. Nothing
 * else in an argument is special to tmux's argv (no quoting, no `$`, newlines pass); `-c` alone
 * is also expanded as a format (see escapeFormat).
 */
export function escapeCommandArg(arg: string): string {
  return arg.endsWith(';') ? `${arg.slice(0, -1)}\\;` : arg;
}

/**
 * A tmux client sends its whole command to the server in one message, at most 16 KiB
 * (MAX_IMSGSIZE, less its header); beyond that it says only "command too long". Each argument
 * costs its UTF-8 bytes and a NUL.
 */
export const TMUX_MAX_COMMAND_BYTES = 16 * 1024 - 32;

export function tmuxCommandBytes(args: readonly string[]): number {
  return args.reduce((sum, arg) => sum + Buffer.byteLength(arg) + 1, 0);
}

export interface TmuxResult {
  stdout: string;
  stderr: string;
}

/**
 * Messages tmux prints when nothing listens on our socket (yet, or any more: a server that exits
 * with its last session while a client asks says "lost server"): that is "no sessions", not a failure.
 */
export function isNoServer(error: unknown): boolean {
  const text = error instanceof Error ? error.message : String(error);
  return /no server running|error connecting to|server exited unexpectedly|lost server/.test(text);
}

/** Tries of a server-starting command that met a server on its way out (see runStartingServer). */
const SERVER_EXIT_RETRIES = 5;

export class Tmux {
  constructor(
    readonly binary: string,
    readonly socketName: string,
    /** Read by the server only when it starts; later invocations ignore it. */
    readonly configFile: string,
  ) {}

  /**
   * The argv prefix every invocation needs; also used to spawn `attach-session` clients. `-u`: a
   * service manager may start the agent with no UTF-8 locale (systemd without /etc/locale.conf,
   * launchd always), and then tmux prints a tab in a format as `_`, which broke the session list.
   */
  baseArgs(): string[] {
    return ['-u', '-L', this.socketName, '-f', this.configFile];
  }

  run(args: readonly string[]): Promise<TmuxResult> {
    return new Promise((resolve, reject) => {
      execFile(
        this.binary,
        [...this.baseArgs(), ...args],
        { env: tmuxEnv(), timeout: TMUX_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          if (error) {
            const detail = stderr.trim() || error.message;
            reject(new Error(`tmux ${args[0] ?? ''} failed: ${detail}`, { cause: error }));
            return;
          }
          resolve({ stdout, stderr });
        },
      );
    });
  }

  /**
   * run() for a command that starts the server when none runs (new-session). A server exiting with
   * its last session still accepts connections for a moment and closes them unanswered ("server
   * exited unexpectedly": it ran nothing); about 1 in 5 new sessions made right then met it. Once
   * it is gone, the same command starts a fresh server, so it is tried again, a few times.
   */
  async runStartingServer(args: readonly string[]): Promise<TmuxResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.run(args);
      } catch (error) {
        if (attempt === SERVER_EXIT_RETRIES || !/server exited unexpectedly/.test(String(error))) throw error;
        await new Promise((resolve) => setTimeout(resolve, 10 * attempt));
      }
    }
  }

  async hasSession(sessionName: string): Promise<boolean> {
    try {
      await this.run(['has-session', '-t', `=${sessionName}`]);
      return true;
    } catch (error) {
      if (isNoServer(error) || /can't find session/.test(String(error))) return false;
      throw error;
    }
  }
}

/** `tmux -V` → "3.3a". Missing binary → E_TMUX_MISSING telling the user what to install. */
export async function detectTmuxVersion(binary: string): Promise<string> {
  const output = await new Promise<string>((resolve, reject) => {
    execFile(binary, ['-V'], { env: tmuxEnv(), timeout: TMUX_TIMEOUT_MS }, (error, stdout) => {
      if (error) reject(error);
      else resolve(stdout.trim());
    });
  }).catch((error: unknown) => {
    const install =
      process.platform === 'darwin'
        ? 'brew install tmux'
        : "sudo apt-get install tmux (or your distribution's tmux package)";
    throw new HangarError(
      'E_TMUX_MISSING',
      `terminal sessions need tmux, and "${binary}" could not be run (${(error as Error).message}). Install it: ${install}`,
      { binary },
    );
  });
  const version = output.replace(/^tmux\s+/, '');
  // new-session -e needs 3.2; window-size latest needs 3.1. Versions like "next-3.4" or
  // "openbsd-7.4" do not parse and are given the benefit of the doubt.
  const match = /^(\d+)\.(\d+)/.exec(version);
  if (match && (Number(match[1]) < 3 || (Number(match[1]) === 3 && Number(match[2]) < 2))) {
    throw new HangarError(
      'E_TMUX_MISSING',
      `tmux ${version} is too old for terminal sessions; tmux 3.2 or newer is needed (brew upgrade tmux, or your distribution's backports)`,
      { version },
    );
  }
  return version;
}

/** tmux-256color is the right TERM inside tmux, but older ncurses (stock macOS) lacks its terminfo. */
export function detectDefaultTerminal(): Promise<string> {
  return new Promise((resolve) => {
    execFile('infocmp', ['tmux-256color'], { timeout: TMUX_TIMEOUT_MS }, (error) => {
      resolve(error ? 'screen-256color' : 'tmux-256color');
    });
  });
}

/** Server options, written to the config file so they apply from the moment the server starts. */
export function serverConfig(defaultTerminal: string, extra: readonly string[] = []): string {
  return [
    // The UI draws its own chrome; a status line would steal a row from every client.
    'set-option -g status off',
    // The client that typed last drives the size; others see it without resizing the session.
    'set-option -g window-size latest',
    // No escape-key delay: every keystroke goes straight through.
    'set-option -s escape-time 0',
    'set-option -g history-limit 50000',
    `set-option -g default-terminal "${defaultTerminal}"`,
    ...extra,
    '',
  ].join('\n');
}
