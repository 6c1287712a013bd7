import { LAUNCHD_LABEL, type InstallMode } from './layout.js';
import type { ServiceCommand } from './systemd-unit.js';

export interface PlistOptions {
  mode: InstallMode;
  command: ServiceCommand;
  logFile: string;
  workingDirectory: string;
  /** LaunchDaemons: the user the agent runs as (UserName). */
  user?: string;
}

/** launchd gives a job a bare PATH; tmux, git and tart live in Homebrew's prefixes. */
const LAUNCHD_PATH = '/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin';

/**
 * The launchd job (launchd.plist(5)). KeepAlive restarts the agent whenever it exits;
 * AbandonProcessGroup keeps launchd from killing what is left in the agent's process group when
 * it stops, so an update or a restart never takes the tmux server's terminals with it.
 */
export function renderLaunchdPlist(options: PlistOptions): string {
  const [program, ...rest] = options.command.argv;
  const entries: [string, PlistValue][] = [
    ['Label', LAUNCHD_LABEL],
    ['ProgramArguments', [program!, ...rest]],
    ['EnvironmentVariables', { PATH: LAUNCHD_PATH, ...options.command.env }],
    ...(options.mode === 'system' && options.user ? ([['UserName', options.user]] as [string, PlistValue][]) : []),
    ['WorkingDirectory', options.workingDirectory],
    ['RunAtLoad', true],
    ['KeepAlive', true],
    // Seconds between restarts of a job that keeps exiting (launchd's default, written out).
    ['ThrottleInterval', 10],
    ['AbandonProcessGroup', true],
    ['ExitTimeOut', 45],
    ['SoftResourceLimits', { NumberOfFiles: 65536 }],
    ['StandardOutPath', options.logFile],
    ['StandardErrorPath', options.logFile],
  ];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    render(Object.fromEntries(entries), 0),
    '</plist>',
    '',
  ].join('\n');
}

type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue };

function render(value: PlistValue, depth: number): string {
  const pad = '  '.repeat(depth);
  if (typeof value === 'string') return `${pad}<string>${escapeXml(value)}</string>`;
  if (typeof value === 'number') return `${pad}<integer>${value}</integer>`;
  if (typeof value === 'boolean') return `${pad}<${value}/>`;
  if (Array.isArray(value)) {
    return [`${pad}<array>`, ...value.map((item) => render(item, depth + 1)), `${pad}</array>`].join('\n');
  }
  return [
    `${pad}<dict>`,
    ...Object.entries(value).flatMap(([key, item]) => [
      `${pad}  <key>${escapeXml(key)}</key>`,
      render(item, depth + 1),
    ]),
    `${pad}</dict>`,
  ].join('\n');
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
