import { HangarError } from '@hangar/shared';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';

export type ServicePlatform = 'linux' | 'darwin';
export type InstallMode = 'system' | 'user';

/** The systemd unit's name, and the launchd label. */
export const SYSTEMD_UNIT = 'hangar-agent.service';
export const LAUNCHD_LABEL = 'dev.hangar.agent';
/** The dedicated account a Linux system install runs the agent as. */
export const SERVICE_USER = 'hangar';
export const DEFAULT_LISTEN = '127.0.0.1:7070';

/**
 * Where an install keeps everything, for one platform and mode. `home` holds the versions side by
 * side (`versions/<v>/`, the package as npm lays it out globally), the `current` symlink the
 * service runs through, and `install.json`. It is separate from the data dir on purpose: on a
 * system install the code is root's and the data is the service user's, so the agent cannot
 * rewrite the code it runs.
 */
export interface InstallLayout {
  platform: ServicePlatform;
  mode: InstallMode;
  home: string;
  dataDir: string;
  serviceFile: string;
  /** launchd only: stdout and stderr of the agent. */
  logFile?: string;
  /** Who the agent runs as: `hangar` (Linux system), the installing user otherwise. */
  serviceUser: string;
}

export const versionsDir = (layout: Pick<InstallLayout, 'home'>) => join(layout.home, 'versions');
export const currentLink = (layout: Pick<InstallLayout, 'home'>) => join(layout.home, 'current');
export const recordFile = (layout: Pick<InstallLayout, 'home'>) => join(layout.home, 'install.json');

/**
 * Test seams, never set in production: HANGAR_INSTALL_PREFIX puts every system path under a
 * directory (like DESTDIR), HANGAR_INSTALL_PLATFORM lets Linux tests render the macOS service.
 */
export interface InstallEnvironment {
  platform: ServicePlatform;
  prefix: string;
  home: string;
  user: string;
  uid: number;
}

export function currentEnvironment(env: NodeJS.ProcessEnv = process.env): InstallEnvironment {
  const platform = env['HANGAR_INSTALL_PLATFORM'] ?? process.platform;
  if (platform !== 'linux' && platform !== 'darwin') {
    throw new HangarError(
      'E_UNAVAILABLE',
      `hangar-agent install supports Linux (systemd) and macOS (launchd); this is ${platform}. ` +
        'Run the agent by hand instead: hangar-agent serve',
    );
  }
  const me = userInfo();
  return {
    platform,
    prefix: env['HANGAR_INSTALL_PREFIX'] ?? '',
    home: env['HOME'] ?? homedir(),
    user: me.username,
    uid: me.uid,
  };
}

export function defaultMode(environment: InstallEnvironment): InstallMode {
  // A Linux root install serves the machine; anyone else installs for themselves. On a Mac the
  // agent needs the user's Tart VMs and keychain, so a LaunchAgent is the default there.
  return environment.platform === 'linux' && environment.uid === 0 ? 'system' : 'user';
}

export function resolveLayout(
  environment: InstallEnvironment,
  mode: InstallMode,
  overrides: { dataDir?: string; serviceUser?: string } = {},
): InstallLayout {
  const { platform, prefix, home } = environment;
  const at = (path: string) => prefix + path;
  if (platform === 'linux' && mode === 'system') {
    return {
      platform,
      mode,
      home: at('/opt/hangar'),
      dataDir: overrides.dataDir ?? at('/var/lib/hangar'),
      serviceFile: at(`/etc/systemd/system/${SYSTEMD_UNIT}`),
      serviceUser: overrides.serviceUser ?? SERVICE_USER,
    };
  }
  if (platform === 'linux') {
    return {
      platform,
      mode,
      home: join(home, '.local/share/hangar-agent'),
      // The same default as `hangar-agent serve`: an agent run by hand keeps its pairings.
      dataDir: overrides.dataDir ?? join(home, '.hangar-agent'),
      serviceFile: join(home, `.config/systemd/user/${SYSTEMD_UNIT}`),
      serviceUser: environment.user,
    };
  }
  if (mode === 'system') {
    // A LaunchDaemon starts at boot without a login, but runs as the Mac's user (UserName), whose
    // Tart VMs and home the agent needs: macOS has no use for a separate service account here.
    const user = overrides.serviceUser ?? process.env['SUDO_USER'] ?? environment.user;
    return {
      platform,
      mode,
      home: at('/Library/Application Support/Hangar'),
      dataDir: overrides.dataDir ?? join(home, '.hangar-agent'),
      serviceFile: at(`/Library/LaunchDaemons/${LAUNCHD_LABEL}.plist`),
      logFile: at('/Library/Logs/Hangar/agent.log'),
      serviceUser: user,
    };
  }
  return {
    platform,
    mode,
    home: join(home, 'Library/Application Support/Hangar/agent'),
    dataDir: overrides.dataDir ?? join(home, '.hangar-agent'),
    serviceFile: join(home, `Library/LaunchAgents/${LAUNCHD_LABEL}.plist`),
    logFile: join(home, 'Library/Logs/Hangar/agent.log'),
    serviceUser: environment.user,
  };
}

/** What `install` decided, kept for status, logs, update and uninstall. Parsed on every read. */
export const InstallRecordSchema = z.object({
  schema_version: z.literal(1),
  platform: z.enum(['linux', 'darwin']),
  mode: z.enum(['system', 'user']),
  home: z.string().min(1),
  data_dir: z.string().min(1),
  listen: z.string().min(1),
  service_file: z.string().min(1),
  service_user: z.string().min(1),
  log_file: z.string().optional(),
  node: z.string().min(1),
  channel: z.string().min(1),
  /** The npm registry the package came from, when not npm's configured one. */
  registry: z.string().optional(),
  installed_at: z.number().int(),
});
export type InstallRecord = z.infer<typeof InstallRecordSchema>;

export function layoutOf(record: InstallRecord): InstallLayout {
  return {
    platform: record.platform,
    mode: record.mode,
    home: record.home,
    dataDir: record.data_dir,
    serviceFile: record.service_file,
    serviceUser: record.service_user,
    ...(record.log_file ? { logFile: record.log_file } : {}),
  };
}

export function readRecord(file: string): InstallRecord | undefined {
  if (!existsSync(file)) return undefined;
  const parsed = InstallRecordSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) {
    throw new HangarError(
      'E_BAD_REQUEST',
      `${file} is not a valid install record (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}); ` +
        'reinstall with: hangar-agent install',
    );
  }
  return parsed.data;
}

export function writeRecord(file: string, record: InstallRecord): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, JSON.stringify(InstallRecordSchema.parse(record), null, 2) + '\n', { mode: 0o644 });
  renameSync(`${file}.tmp`, file);
}

/**
 * Finds the install the other commands act on: the mode asked for, else the user's own, else the
 * system's. Undefined when nothing is installed.
 */
export function findInstall(
  environment: InstallEnvironment,
  mode?: InstallMode,
): { record: InstallRecord; layout: InstallLayout } | undefined {
  const modes: InstallMode[] = mode ? [mode] : ['user', 'system'];
  for (const candidate of modes) {
    const record = readRecord(recordFile(resolveLayout(environment, candidate)));
    if (record) return { record, layout: layoutOf(record) };
  }
  return undefined;
}

export function notInstalled(mode?: InstallMode): HangarError {
  return new HangarError(
    'E_NOT_FOUND',
    `no hangar-agent service is installed${mode ? ` (--${mode})` : ''} on this machine; install one with: hangar-agent install`,
  );
}

export function describeService(layout: InstallLayout): string {
  if (layout.platform === 'linux') {
    return layout.mode === 'system'
      ? `systemd system service running as ${layout.serviceUser}`
      : 'systemd user service (lingering, so it runs without a login)';
  }
  return layout.mode === 'system' ? `launchd daemon running as ${layout.serviceUser}` : 'launchd agent';
}
