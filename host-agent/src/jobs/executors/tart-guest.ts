import { spawn } from 'node:child_process';
import { HangarError, shellQuote } from '@hangar/shared';
import type { TartCli } from './tart-cli.js';

/**
 * How commands reach a Tart guest. `exec`: `tart exec` through the Tart guest agent (no network or
 * keys needed). `ssh`: the system ssh client to the VM's IP, for images without the agent.
 * `auto`: one `tart exec` probe per VM, SSH when the agent does not answer.
 */
export type GuestAccess = 'auto' | 'exec' | 'ssh';

/** Exit code reported for a guest command we killed because it took too long (as timeout(1) does). */
export const TIMED_OUT = 124;

export interface GuestProcess {
  done: Promise<{ exitCode: number }>;
  /** SIGKILL to the local client (`tart exec` or `ssh`); the guest side may outlive it. */
  kill(): void;
}

export interface GuestProbe {
  exitCode: number;
  /** The client's own output, trimmed (why a probe failed). */
  detail: string;
}

/** One VM's way in. The same wrapper script runs either way; only the transport differs. */
export interface GuestTransport {
  readonly kind: 'exec' | 'ssh';
  /** Runs argv in the guest, stdout and stderr chunks to `onOutput` as they arrive. */
  spawn(command: string[], onOutput?: (chunk: Buffer) => void): GuestProcess;
  /** A short command with its output kept for diagnosis; killed and reported as TIMED_OUT after `timeoutMs`. */
  probe(command: string[], timeoutMs: number): Promise<GuestProbe>;
}

export class ExecTransport implements GuestTransport {
  readonly kind = 'exec' as const;

  constructor(
    private readonly cli: TartCli,
    readonly vm: string,
  ) {}

  spawn(command: string[], onOutput?: (chunk: Buffer) => void): GuestProcess {
    return this.cli.exec(this.vm, command, onOutput);
  }

  probe(command: string[], timeoutMs: number): Promise<GuestProbe> {
    return probeWith(this.spawn.bind(this), command, timeoutMs);
  }
}

export interface SshSettings {
  /** Login on the guest; Cirrus Labs images have `admin`. */
  user: string;
  /** Private key file; the image needs its public half in the user's ~/.ssh/authorized_keys. */
  key: string;
  /** Our own known_hosts (`<data>/tart/known_hosts`), not the user's. */
  knownHostsFile: string;
  /** Defaults to `ssh` from PATH. */
  binary?: string;
  env?: NodeJS.ProcessEnv;
}

export const SSH_INSTALL_HINT = 'the OpenSSH client ships with macOS at /usr/bin/ssh';

/**
 * The system ssh client, argv only. The remote side always runs the command through the login
 * shell, so the guest argv is joined into one single-quoted string (the only shell string, and
 * it is built from quoted words). BatchMode: a missing key fails at once instead of prompting for
 * a password; accept-new: a fresh VM's host key is recorded, a changed one for a known IP refused.
 * ServerAlive: a VM that dies mid-job ends the connection in ~30 s instead of hanging it.
 */
export class SshTransport implements GuestTransport {
  readonly kind = 'ssh' as const;

  constructor(
    private readonly settings: SshSettings,
    readonly vm: string,
    readonly ip: string,
  ) {}

  args(command: string[]): string[] {
    const options = [
      'BatchMode=yes',
      'StrictHostKeyChecking=accept-new',
      `UserKnownHostsFile=${this.settings.knownHostsFile}`,
      'ConnectTimeout=5',
      'ServerAliveInterval=10',
      'ServerAliveCountMax=3',
    ];
    return [
      ...options.flatMap((option) => ['-o', option]),
      '-i',
      this.settings.key,
      `${this.settings.user}@${this.ip}`,
      command.map(shellQuote).join(' '),
    ];
  }

  spawn(command: string[], onOutput?: (chunk: Buffer) => void): GuestProcess {
    const child = spawn(this.settings.binary ?? 'ssh', this.args(command), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: this.settings.env ?? process.env,
    });
    child.stdout!.on('data', (chunk: Buffer) => onOutput?.(chunk));
    child.stderr!.on('data', (chunk: Buffer) => onOutput?.(chunk));
    const done = new Promise<{ exitCode: number }>((resolve, reject) => {
      child.once('error', (error) => {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new HangarError('E_EXECUTOR_UNAVAILABLE', `ssh is not installed: ${SSH_INSTALL_HINT}`));
        } else reject(error);
      });
      child.once('close', (code, signal) => resolve({ exitCode: code ?? (signal ? 128 : 1) }));
    });
    return { done, kill: () => child.kill('SIGKILL') };
  }

  probe(command: string[], timeoutMs: number): Promise<GuestProbe> {
    return probeWith(this.spawn.bind(this), command, timeoutMs);
  }
}

async function probeWith(
  start: (command: string[], onOutput?: (chunk: Buffer) => void) => GuestProcess,
  command: string[],
  timeoutMs: number,
): Promise<GuestProbe> {
  const chunks: Buffer[] = [];
  const run = start(command, (chunk) => chunks.push(chunk));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    run.kill();
  }, timeoutMs);
  try {
    const { exitCode } = await run.done;
    const detail = Buffer.concat(chunks).toString('utf8').trim().slice(-2000);
    return timedOut
      ? { exitCode: TIMED_OUT, detail: `no answer within ${timeoutMs} ms. ${detail}`.trim() }
      : { exitCode, detail };
  } finally {
    clearTimeout(timer);
  }
}
