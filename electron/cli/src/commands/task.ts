import { HangarError, type TaskInfo } from '@hangar/shared';
import type { Command } from 'commander';
import { ago, printJson, reportUnreachable, table, visibleText, withoutNullErrors } from '../output.js';
import { viaRunningCore, withApi } from '../run.js';
import { attachSession, DEFAULT_DETACH_KEY } from './attach.js';
import { remoteCwd } from './session.js';

interface AddOptions {
  host?: string;
  needs?: string;
  cwd?: string;
  repo?: string;
  ref?: string;
  runner?: string;
  json?: boolean;
}

export function registerTask(program: Command): void {
  const task = program
    .command('task')
    .description('queue prompts for AI coding agents (Claude Code) that a fitting host claims and runs in a session');

  task
    .command('add')
    .description(
      'queue a task and hand it to the first host that fits (it stays queued, with the reason, while none does)',
    )
    .argument('<prompt>', 'what the agent should do (one starting with "-" goes after --: task add -- "-v …")')
    .argument('[agent...]', 'after --: the agent command (default: claude); the prompt is its last argument')
    .option('--host <host>', 'only this host may take it')
    .option('--needs <needs>', 'comma-separated: os:linux, os:macos, arch:<arch>, label:<name>, or a program on PATH')
    .option('--cwd <dir>', 'the directory on the host the agent works in (absolute, or ~/…); default: its home')
    .option('--repo <dir>', 'a git repository on the host: the agent works in a worktree of it, on a branch of its own')
    .option('--ref <ref>', 'with --repo: the branch, tag or commit the worktree starts from (default: its HEAD)')
    .option('--runner <runner>', 'any (default), user (an agent run by a person) or service (an installed agent)')
    .option('--json', 'print JSON')
    // commander reads a prompt that starts with "-" as an option it does not know: say where it goes.
    .showHelpAfterError(
      '(a prompt that starts with "-" goes after --: hangar task add -- "<prompt>"; run with --help for usage)',
    )
    .action((prompt: string, agent: string[], options: AddOptions) =>
      withApi(async (api) => {
        if (options.cwd !== undefined && options.repo !== undefined) {
          throw new HangarError(
            'E_BAD_REQUEST',
            '--cwd and --repo exclude each other: a task with --repo works in a git worktree of that repository; give one',
          );
        }
        if (options.ref !== undefined && options.repo === undefined) {
          throw new HangarError('E_BAD_REQUEST', '--ref needs --repo: it says what the worktree starts from');
        }
        const needs = options.needs
          ?.split(',')
          .map((n) => n.trim())
          .filter((n) => n !== '');
        const { task: added } = await api.call('tasks.add', {
          spec: {
            prompt,
            ...(agent.length > 0 ? { agent } : {}),
            ...(needs !== undefined ? { needs } : {}),
            // The host is not known yet: a path under this computer's home is the host user's home there.
            ...(options.cwd !== undefined ? { cwd: remoteCwd(options.cwd, false) } : {}),
            ...(options.repo !== undefined ? { repo: remoteCwd(options.repo, false, '--repo') } : {}),
            ...(options.ref !== undefined ? { ref: options.ref } : {}),
            ...(options.runner !== undefined ? { runner: options.runner as 'any' } : {}),
          },
          ...(options.host !== undefined ? { host: options.host } : {}),
        });
        if (options.json) return printJson(added);
        if (added.host !== null) {
          process.stdout.write(
            `task ${added.id} runs on ${added.host} in session ${added.session}; answer it with: hangar task attach ${added.id}\n`,
          );
        } else {
          process.stdout.write(`task ${added.id} is queued: ${visibleText(added.reason ?? 'waiting for a host')}\n`);
          // Only a running app offers the queue again; this command's own core ends with it.
          if (!viaRunningCore())
            process.stderr.write(
              'hangar: the running app (npm start, hangar ui) offers it again as hosts come online or end tasks; none runs now\n',
            );
        }
      }),
    );

  task
    .command('ls')
    .description("this computer's queued tasks and every host's tasks")
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) =>
      withApi(async (api) => {
        const { queued, hosts } = await api.call('tasks.list', {});
        if (options.json) return printJson({ queued, hosts: withoutNullErrors(hosts) });
        const all = [...queued, ...hosts.flatMap((h) => h.tasks)].sort((a, b) => b.created_at - a.created_at);
        if (all.length > 0)
          process.stdout.write(
            table(
              ['ID', 'HOST', 'STATE', 'SESSION', 'BRANCH', 'CREATED', 'PROMPT', 'NOTE'],
              all.map((t) => [
                t.id,
                t.host ?? '-',
                t.state,
                t.session ?? '-',
                t.worktree !== undefined ? visibleText(t.worktree.branch) : '-',
                ago(t.created_at),
                oneLine(t.spec.prompt),
                oneLine(t.detail ?? (t.state === 'queued' || t.state === 'error' ? (t.reason ?? '') : '')),
              ]),
            ),
          );
        else process.stdout.write('no tasks; queue one with: hangar task add "<prompt>"\n');
        // A host lists its newest tasks up to a byte bound: the older ones are said, not shown.
        for (const h of hosts)
          if ((h.truncated ?? 0) > 0)
            process.stdout.write(`${h.host}: ${h.truncated} older tasks not listed (a host lists its newest)\n`);
        return reportUnreachable(hosts);
      }),
    );

  task
    .command('show')
    .description('one task: its prompt, where it runs, its state and the agent’s last words')
    .argument('<task>', 'task id')
    .option('--host <host>', 'the host it runs on (default: this computer’s queue, then every host)')
    .option('--json', 'print JSON')
    .action((id: string, options: { host?: string; json?: boolean }) =>
      withApi(async (api) => {
        const { task: found } = await api.call('tasks.get', { id, ...hostOf(options) });
        if (options.json) return printJson(found);
        process.stdout.write(describeTask(found));
      }),
    );

  task
    .command('cancel')
    .description('take a queued task out of the queue, or end a running one (its session is killed)')
    .argument('<task>', 'task id')
    .option('--host <host>', 'the host it runs on (default: this computer’s queue, then every host)')
    .option('--json', 'print JSON')
    .action((id: string, options: { host?: string; json?: boolean }) =>
      withApi(async (api) => {
        const { task: cancelled } = await api.call('tasks.cancel', { id, ...hostOf(options) });
        if (options.json) return printJson(cancelled);
        process.stdout.write(`task ${cancelled.id} is ${cancelled.state}\n`);
      }),
    );

  task
    .command('attach')
    .description("attach this terminal to the task's session, to watch the agent or answer it")
    .argument('<task>', 'task id')
    .option('--host <host>', 'the host it runs on (default: this computer’s queue, then every host)')
    .option('--detach-key <key>', 'key that detaches and leaves the agent running', DEFAULT_DETACH_KEY)
    .action((id: string, options: { host?: string; detachKey: string }) =>
      withApi(async (api) => {
        const { task: found } = await api.call('tasks.get', { id, ...hostOf(options) });
        if (found.host === null || found.session === null) {
          throw new HangarError(
            'E_TASK_STATE',
            `task ${found.id} is ${found.state} and runs nowhere yet: ${visibleText(found.reason ?? 'no host has taken it')}`,
          );
        }
        return attachSession(api, found.host, found.session, options.detachKey);
      }),
    );
}

function hostOf(options: { host?: string }): { host?: string } {
  return options.host !== undefined ? { host: options.host } : {};
}

function describeTask(task: TaskInfo): string {
  const lines = [
    `task      ${task.id}`,
    `state     ${task.state}${task.exit_code !== null ? ` (exit ${task.exit_code})` : ''}`,
    `host      ${task.host ?? '- (in this computer’s queue)'}`,
  ];
  if (task.session !== null) lines.push(`session   ${task.session} (hangar task attach ${task.id})`);
  lines.push(`prompt    ${visibleText(oneLine(task.spec.prompt, 200))}`);
  lines.push(`agent     ${visibleText(task.spec.agent.join(' '))}`);
  if (task.spec.cwd !== undefined) lines.push(`cwd       ${visibleText(task.spec.cwd)}`);
  if (task.spec.repo !== undefined)
    lines.push(
      `repo      ${visibleText(task.spec.repo)}${task.spec.ref !== undefined ? ` at ${visibleText(task.spec.ref)}` : ''}`,
    );
  if (task.worktree !== undefined) {
    lines.push(`branch    ${visibleText(task.worktree.branch)}`);
    lines.push(`worktree  ${visibleText(task.worktree.path)}`);
  }
  if (task.spec.needs.length > 0) lines.push(`needs     ${task.spec.needs.join(', ')}`);
  if (task.spec.runner !== 'any') lines.push(`runner    ${task.spec.runner}`);
  lines.push(`created   ${new Date(task.created_at).toISOString()} (${ago(task.created_at)})`);
  if (task.detail !== null) lines.push(`agent says ${visibleText(task.detail)}`);
  if (task.reason !== null) lines.push(`reason    ${visibleText(task.reason)}`);
  return lines.join('\n') + '\n';
}

function oneLine(text: string, max = 50): string {
  const first = text.split('\n')[0]!;
  const short = first.length > max ? `${first.slice(0, max - 1)}…` : first;
  return visibleText(short === text ? short : short.endsWith('…') ? short : `${short} …`);
}
