import { HangarError } from '@hangar/shared';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';

export interface DesktopNotification {
  title: string;
  body: string;
}

/**
 * What the core needs from the environment it runs in (Tabby's Platform seam). Electron's main
 * process implements it with native APIs; web mode (a plain Node process) with the OS's tools.
 * The core never asks which one it has.
 */
export interface Platform {
  readonly kind: 'electron' | 'web';
  /** Opens a URL in the user's browser. Only http(s) URLs: anything else is refused. */
  openExternal(url: string): Promise<void>;
  /** Best effort: a notification nobody sees is not an error. */
  showNotification(notification: DesktopNotification): void;
  /** Where artifacts.download saves files. */
  downloadsDir(): string;
}

export function isWebUrl(url: string): boolean {
  try {
    const { protocol } = new URL(url);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false; // not a URL at all
  }
}

/** The user's download folder: $HANGAR_DOWNLOADS, else ~/Downloads when it exists, else home. */
export function defaultDownloadsDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['HANGAR_DOWNLOADS'];
  if (fromEnv) return fromEnv;
  const downloads = join(homedir(), 'Downloads');
  return existsSync(downloads) ? downloads : homedir();
}

export interface NodePlatformOptions {
  /** Which OS's tools to use; default this one (tests ask for the other's). */
  os?: NodeJS.Platform;
  /** The environment the tools run in (PATH finds them); default this process's. */
  env?: NodeJS.ProcessEnv;
}

/**
 * osascript runs this fixed source; the title and body reach it as `argv`, data it never parses,
 * so no text from a host can become AppleScript.
 */
const NOTIFY_SCRIPT = 'on run argv\ndisplay notification (item 2 of argv) with title (item 1 of argv)\nend run';

/** Web mode: no window of our own, so the OS's opener and notifier commands. */
export function nodePlatform(logger: Logger, options: NodePlatformOptions = {}): Platform {
  const os = options.os ?? process.platform;
  const launch = (command: string, args: string[]) => {
    const child = spawn(command, args, { stdio: 'ignore', detached: true, env: options.env ?? process.env });
    child.on('error', (error) => logger.debug({ err: error, command }, 'platform command unavailable'));
    child.unref();
  };
  return {
    kind: 'web',
    async openExternal(url) {
      if (!isWebUrl(url)) throw new HangarError('E_FORBIDDEN', `refusing to open "${url}": only http and https URLs`);
      if (os === 'darwin') launch('open', [url]);
      else if (os === 'win32') launch('explorer.exe', [url]);
      else launch('xdg-open', [url]);
    },
    showNotification({ title, body }) {
      logger.info({ title, body }, 'notification');
      // Title and body come from hosts (a job's command, a session's name). Both tools read options
      // from any argument that starts with "-" (notify-send's GOption anywhere, osascript's getopt
      // up to its first operand), so `--` ends the options before the first byte of that text.
      if (os === 'darwin') launch('osascript', ['-e', NOTIFY_SCRIPT, '--', title, body]);
      else if (os === 'linux') launch('notify-send', ['--app-name=Hangar', '--', title, body]);
    },
    downloadsDir: () => defaultDownloadsDir(),
  };
}
