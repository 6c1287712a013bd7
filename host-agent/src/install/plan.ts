import { HangarError } from '@hangar/shared';
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, cpSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * What install and uninstall do, as data: the same list is printed by --dry-run and carried out
 * otherwise, so the dry run cannot drift from what really happens.
 */
export type Step =
  | { kind: 'write'; path: string; content: string; mode: number; why: string }
  | { kind: 'mkdir'; path: string; mode: number; owner?: string; why: string }
  | { kind: 'copy'; from: string; to: string; why: string }
  | { kind: 'link'; path: string; target: string; why: string }
  | { kind: 'remove'; path: string; why: string }
  | { kind: 'run'; argv: string[]; why: string; /** A failure is reported and the plan goes on. */ mayFail?: boolean }
  /** The token itself is not in the step (a dry run prints steps): the installer holds it. */
  | { kind: 'enroll'; dataDir: string; relay: string; tokenId: string; user?: string; why: string };

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program found on PATH (so tests can put stand-ins first); never through a shell. */
export type Runner = (argv: readonly string[], options?: { timeoutMs?: number }) => Promise<CommandResult>;

export const runProgram: Runner = (argv, options = {}) =>
  new Promise((resolve) => {
    execFile(
      argv[0]!,
      argv.slice(1),
      { timeout: options.timeoutMs ?? 60_000, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 127) : 0;
        resolve({ code, stdout, stderr: stderr || (error && code === 127 ? error.message : '') });
      },
    );
  });

export function describeStep(step: Step): string {
  switch (step.kind) {
    case 'write':
      return `write ${step.path} (mode ${step.mode.toString(8)}): ${step.why}\n${indent(step.content)}`;
    case 'mkdir':
      return `mkdir ${step.path} (mode ${step.mode.toString(8)}${step.owner ? `, owner ${step.owner}` : ''}): ${step.why}`;
    case 'copy':
      return `copy ${step.from} -> ${step.to}: ${step.why}`;
    case 'link':
      return `symlink ${step.path} -> ${step.target}: ${step.why}`;
    case 'remove':
      return `remove ${step.path}: ${step.why}`;
    case 'run':
      return `run ${step.argv.map(quoteForDisplay).join(' ')}: ${step.why}`;
    case 'enroll':
      return (
        `enroll ${step.dataDir} with the relay ${step.relay} (token ${step.tokenId}, single use` +
        `${step.user ? `; as ${step.user}` : ''}): ${step.why}`
      );
  }
}

export function describePlan(steps: readonly Step[]): string {
  return steps.map((step, index) => `${index + 1}. ${describeStep(step)}`).join('\n') + '\n';
}

export interface ApplyOptions {
  run: Runner;
  /** uid and gid for an owner name (the users are made by an earlier step of the same plan). */
  resolveOwner: (name: string) => { uid: number; gid: number };
  log: (line: string) => void;
  /** Carries out an enroll step (install --token); plans without one need none. */
  enroll?: (step: Extract<Step, { kind: 'enroll' }>) => Promise<void>;
}

/** Carries out the steps in order; the first failing step stops the plan with what to do. */
export async function applyPlan(steps: readonly Step[], options: ApplyOptions): Promise<void> {
  for (const step of steps) {
    options.log(`- ${describeStep(step).split('\n')[0]}`);
    switch (step.kind) {
      case 'write': {
        mkdirSync(dirname(step.path), { recursive: true });
        // Written beside and renamed: a crash never leaves half a unit file for systemd to read.
        writeFileSync(`${step.path}.tmp`, step.content, { mode: step.mode });
        chmodSync(`${step.path}.tmp`, step.mode);
        renameSync(`${step.path}.tmp`, step.path);
        break;
      }
      case 'mkdir': {
        mkdirSync(step.path, { recursive: true, mode: step.mode });
        chmodSync(step.path, step.mode);
        if (step.owner) {
          const { uid, gid } = options.resolveOwner(step.owner);
          chownSync(step.path, uid, gid);
        }
        break;
      }
      case 'copy':
        rmSync(step.to, { recursive: true, force: true });
        mkdirSync(dirname(step.to), { recursive: true });
        cpSync(step.from, step.to, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
        break;
      case 'link':
        switchSymlink(step.path, step.target);
        break;
      case 'remove':
        rmSync(step.path, { recursive: true, force: true });
        break;
      case 'run': {
        const result = await options.run(step.argv);
        if (result.code !== 0) {
          const output = (result.stderr || result.stdout).trim();
          if (step.mayFail) {
            options.log(`  (${step.argv[0]} exited ${result.code}: ${output}; going on)`);
            break;
          }
          throw new HangarError(
            'E_INTERNAL',
            `${step.argv.map(quoteForDisplay).join(' ')} failed (exit ${result.code}): ${output || 'no output'}. ` +
              'Fix that and run the same hangar-agent command again; the steps before it are safe to repeat.',
          );
        }
        break;
      }
      case 'enroll':
        if (!options.enroll) throw new HangarError('E_INTERNAL', 'an enroll step without an enrollment to carry out');
        await options.enroll(step);
        break;
    }
  }
}

/**
 * Points `path` at `target` atomically: a new link beside it, renamed over the old one (rename(2)
 * replaces a symlink in one step), so a service starting at any moment sees the old or the new
 * version, never none.
 */
export function switchSymlink(path: string, target: string): void {
  const temporary = `${path}.next-${process.pid}`;
  rmSync(temporary, { force: true });
  mkdirSync(dirname(path), { recursive: true });
  symlinkSync(target, temporary);
  renameSync(temporary, path);
}

function indent(text: string): string {
  return text
    .replace(/\n$/, '')
    .split('\n')
    .map((line) => `   | ${line}`)
    .join('\n');
}

export function quoteForDisplay(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
