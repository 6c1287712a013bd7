import { HangarError, type HostTaskCapabilities, type TaskSpec } from '@hangar/shared';
import { constants, accessSync, statSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { delimiter, join } from 'node:path';

/** Coding agents whose commands a host lists in host.info when its agent finds them on PATH. */
export const KNOWN_AGENT_COMMANDS = ['claude', 'codex', 'gemini', 'aider', 'opencode', 'cursor-agent'] as const;

export function isKnownAgent(program: string): boolean {
  return (KNOWN_AGENT_COMMANDS as readonly string[]).includes(program);
}

/**
 * The known agents' options whose value is a prompt, as each documents them: aider's
 * `--message/--msg/-m COMMAND` (argparse), gemini's `-p/--prompt` and `-i/--prompt-interactive`
 * (yargs), opencode's `--prompt` (yargs). An agent command ending in one gives the prompt as its value.
 */
const PROMPT_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  aider: ['--message', '--msg', '-m'],
  gemini: ['--prompt', '-p', '--prompt-interactive', '-i'],
  opencode: ['--prompt'],
};

/** Whether `option`, the last argument of `program`'s command, takes the prompt as its value. */
export function isPromptOption(program: string, option: string): boolean {
  return Object.hasOwn(PROMPT_OPTIONS, program) && PROMPT_OPTIONS[program]!.includes(option);
}

/** Node's platform name as a need says it (`os:macos` is darwin). */
export function taskOs(): string {
  const name = platform();
  return name === 'darwin' ? 'macos' : name;
}

/**
 * Whether `program` is an executable file in a directory of `path` (the agent's own PATH: a task's
 * session runs with the agent's environment). A name with a slash is a file path.
 */
export function onPath(program: string, path = process.env['PATH'] ?? ''): boolean {
  const candidates = program.includes('/')
    ? [program]
    : path
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, program));
  return candidates.some((file) => {
    try {
      if (!statSync(file).isFile()) return false;
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false; // not there, or not ours to run: the next directory may have it
    }
  });
}

export function hostTaskCapabilities(options: {
  labels: readonly string[];
  runner: 'user' | 'service';
  maxTasks: number;
}): HostTaskCapabilities {
  return {
    os: taskOs(),
    arch: arch(),
    agents: KNOWN_AGENT_COMMANDS.filter((command) => onPath(command)),
    labels: [...options.labels],
    runner: options.runner,
    max_tasks: options.maxTasks,
  };
}

/**
 * Refuses a task this host does not fit with E_TASK_UNFIT, naming every need it lacks. The agent
 * command itself is always a need, and so is git for a task with a repo (a task whose agent is not here cannot run here).
 */
export function assertFits(spec: TaskSpec, host: HostTaskCapabilities): void {
  const lacks: string[] = [];
  if (spec.runner !== 'any' && spec.runner !== host.runner) {
    lacks.push(
      `it needs a ${spec.runner} runner and this host's agent is a ${host.runner} one (${host.runner === 'service' ? 'installed as a service' : 'run by a person, not installed as a service'})`,
    );
  }
  // A task with a repo needs git to make its worktree.
  const needs = [...new Set([spec.agent[0]!, ...(spec.repo !== undefined ? ['git'] : []), ...spec.needs])];
  for (const need of needs) {
    const [kind, value] = need.includes(':') && !need.includes('/') ? need.split(':', 2) : ['program', need];
    if (kind === 'os' && value !== host.os) lacks.push(`it needs os:${value} and this host runs ${host.os}`);
    else if (kind === 'arch' && value !== host.arch) lacks.push(`it needs arch:${value} and this host is ${host.arch}`);
    else if (kind === 'label' && !host.labels.includes(value!))
      lacks.push(
        `it needs label:${value} and this host's agent has ${host.labels.length > 0 ? `labels ${host.labels.join(', ')}` : 'no labels'} (hangar-agent serve --label ${value})`,
      );
    else if (kind === 'program' && !onPath(value!))
      lacks.push(`it needs ${value} and that is not on this host agent's PATH`);
  }
  if (lacks.length > 0) {
    throw new HangarError('E_TASK_UNFIT', `does not fit: ${lacks.join('; ')}`, { lacks });
  }
}
