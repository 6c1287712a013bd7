import { shellQuote } from '@hangar/shared';
import type { Command } from 'commander';
import { realpathSync } from 'node:fs';
import { TOP_COMMANDS } from '../command-index.js';
import type { CommandSpec } from '../command-table.js';
import { commandTable } from '../describe-commands.js';
import { endIfWebRtcHeld, openDoor } from '../run.js';

const SHELLS = ['bash', 'zsh', 'fish'] as const;
type Shell = (typeof SHELLS)[number];

/** hangar completion <shell>, and the hidden hangar __complete the scripts call. */
export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script (bash, zsh or fish); see README "Shell completion"')
    .argument('<shell>')
    .action((shell: string) => {
      if (!(SHELLS as readonly string[]).includes(shell)) {
        process.stderr.write(`hangar: completion ${shell}: expected one of ${SHELLS.join(', ')}\n`);
        process.exitCode = 2;
        return;
      }
      process.stdout.write(completionScript(shell as Shell, invocation()));
    });

  program
    .command('__complete', { hidden: true })
    .description('')
    .argument('[words...]')
    .allowUnknownOption()
    .helpOption(false)
    .action(async (words: string[]) => {
      // A shell is waiting on every key press: answer what can be answered, never an error.
      const candidates = await complete(words).catch(() => []);
      if (candidates.length > 0) process.stdout.write(`${candidates.join('\n')}\n`);
      // Its own core may hold a stalled WebRTC connection: the shell must not wait on it.
      await endIfWebRtcHeld(0);
    });
}

/** How the script calls this same hangar back: node and this file, by absolute path (npx or not). */
function invocation(): string {
  const bin = process.argv[1] ? realpathSync(process.argv[1]) : 'hangar';
  return [process.execPath, bin].map(shellQuote).join(' ');
}

export function completionScript(shell: Shell, hangar: string): string {
  switch (shell) {
    case 'bash':
      return [
        '# hangar completion for bash: eval "$(hangar completion bash)" in ~/.bashrc',
        '_hangar_complete() {',
        "  local IFS=$'\\n'",
        `  COMPREPLY=( $(compgen -W "$(${hangar} __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)" -- "\${COMP_WORDS[COMP_CWORD]}") )`,
        '}',
        'complete -o default -F _hangar_complete hangar',
        '',
      ].join('\n');
    case 'zsh':
      return [
        '#compdef hangar',
        '# hangar completion for zsh: eval "$(hangar completion zsh)" in ~/.zshrc (after compinit)',
        '_hangar() {',
        '  local -a candidates',
        `  candidates=("\${(@f)$(${hangar} __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)}")`,
        '  compadd -a candidates',
        '}',
        'compdef _hangar hangar',
        '',
      ].join('\n');
    case 'fish':
      return [
        '# hangar completion for fish: hangar completion fish > ~/.config/fish/completions/hangar.fish',
        `complete -c hangar -f -a '(${hangar.replaceAll("'", "\\'")} __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'`,
        '',
      ].join('\n');
  }
}

/**
 * What may come next: `words` are the words after `hangar`, the last one the word being typed
 * (maybe empty). Commands and options come from the command table; hosts and sessions from the
 * core (the running app's, over its local socket, when it runs).
 */
export async function complete(words: string[]): Promise<string[]> {
  const typed = words.at(-1) ?? '';
  const before = words.slice(0, -1);
  const starting = (names: Iterable<string>) => [...names].filter((name) => name.startsWith(typed));
  if (before.length === 0) {
    if (typed.startsWith('-')) return starting(['--help', '--version']);
    return starting([...TOP_COMMANDS.filter((c) => !c.hidden).map((c) => c.name), 'help']);
  }

  // The table of every command (command-table.ts): no command file is loaded to complete one.
  let command: CommandSpec = await commandTable();
  const names: string[] = [];
  const positional: string[] = [];
  for (const word of before) {
    const sub = command.commands.find((c) => c.name === word);
    if (sub && positional.length === 0) {
      command = sub;
      names.push(sub.name);
    } else if (!word.startsWith('-')) positional.push(word);
  }
  if (typed.startsWith('-')) return starting(command.options.flatMap((o) => (o.long && !o.hidden ? [o.long] : [])));
  if (positional.length === 0 && command.commands.length > 0)
    return starting(command.commands.filter((c) => c.name !== 'help').map((c) => c.name));

  const argument = command.args[positional.length]?.name;
  const path = names.join(' ');
  const wantsHost =
    argument === 'host' || ((path === 'hosts rename' || path === 'hosts rm') && positional.length === 0);
  const wantsSession = argument === 'session' || (path === 'session kill' && argument === 'name');
  if (!wantsHost && !wantsSession) return [];
  const api = await openDoor();
  try {
    if (wantsHost) return starting((await api.call('hosts.list', {})).hosts.map((h) => h.name));
    const host = positional[0];
    if (host === undefined) return [];
    const { hosts } = await api.call('sessions.list', { host });
    return starting(hosts.flatMap((group) => group.sessions.map((s) => s.name)));
  } finally {
    await api.dispose();
  }
}
