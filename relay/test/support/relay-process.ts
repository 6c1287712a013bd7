import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { untilListening } from '../../../test/support/processes.js';

export const RELAY_BIN = fileURLToPath(new URL('../../bin/hangar-relay.js', import.meta.url));

export interface RelayProcess extends AsyncDisposable {
  child: ChildProcess;
  url: string;
  port: number;
  stderr: () => string;
  /** kill -9: no shutdown code runs, as in a crash or an OOM kill. */
  crash(): Promise<void>;
  stop(): Promise<void>;
}

/** `hangar-relay serve` as its own process; resolves when it prints where it listens. */
export async function startRelayProcess(args: string[], env: Record<string, string> = {}): Promise<RelayProcess> {
  const child = spawn(process.execPath, [RELAY_BIN, 'serve', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HANGAR_LOG_LEVEL: 'warn', ...env },
  });
  const { at: url, stderr } = await untilListening(child, 'hangar-relay', 'url', 20_000);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const kill = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return {
    child,
    url,
    port: Number(new URL(url).port),
    stderr,
    crash: () => kill('SIGKILL'),
    stop: () => kill('SIGTERM'),
    [Symbol.asyncDispose]: () => kill('SIGKILL'),
  };
}

/** `hangar-relay <args>` run to its end (20 s at most): its exit code and what it printed. */
export async function relayCli(args: string[]) {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [RELAY_BIN, ...args], { timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failure.code ?? -1, stdout: failure.stdout ?? '', stderr: failure.stderr ?? '' };
  }
}
