import {
  CoreApiClient,
  CoreTerminal,
  createMemoryTransportPair,
  type HostView,
  type TerminalStatus,
} from '@hangar/shared';
import { CoreApiServer } from '../../electron/core/src/api/index.js';
import { HangarCore } from '../../electron/core/src/core.js';
import { nodePlatform } from '../../electron/core/src/platform.js';

/**
 * What a window's core does, without the window: a live core (it keeps links to hosts and a socket
 * to the account's relay) in this process, on `home`, reached through the same door and client the
 * window uses. It keeps the last host list it was sent, for a test to wait on.
 */
export async function openWindow(home: string, cleanups: (() => unknown)[]) {
  const core = await HangarCore.open({ home });
  const server = new CoreApiServer(core, nodePlatform(core.logger), { live: true });
  const [clientEnd, coreEnd] = createMemoryTransportPair({ schedule: setImmediate });
  server.serve(coreEnd);
  const window = new CoreApiClient(clientEnd);
  cleanups.push(async () => {
    window.dispose();
    await server.dispose();
    await core.dispose();
  });
  let seen: HostView[] = (await window.call('hosts.list', {})).hosts;
  window.on('hosts.changed', ({ hosts }) => (seen = hosts));
  const until = async (check: (hosts: HostView[]) => boolean, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!check(seen)) {
      if (Date.now() > deadline) throw new Error(`the window never showed that: ${JSON.stringify(seen)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  /** Waits until the window shows the account's word on `name` as `presence`. */
  const windowSays = (name: string, presence: string, timeoutMs: number) =>
    until((hosts) => hosts.find((h) => h.name === name)?.account?.presence === presence, timeoutMs);
  return { window, windowSays, until };
}

/**
 * A bash session made on `host` through the window and a terminal on it as the window opens one:
 * `raw()` is everything it printed so far, `statuses` each status it went through.
 */
export async function openBashTerminal(
  window: CoreApiClient,
  host: string,
  session: string,
  cleanups: (() => unknown)[],
): Promise<{ terminal: CoreTerminal; raw: () => string; statuses: TerminalStatus[] }> {
  await window.call('sessions.create', {
    host,
    session: { name: session, command: ['bash', '--norc', '--noprofile'], env: { PS1: '$ ' } },
  });
  let raw = '';
  const statuses: TerminalStatus[] = [];
  const decoder = new TextDecoder();
  const terminal = new CoreTerminal(
    window,
    { host, session, cols: 100, rows: 30 },
    {
      write: (data, done) => {
        raw += decoder.decode(data, { stream: true });
        done();
      },
      status: (status) => statuses.push(status),
      ended: () => undefined,
    },
  );
  cleanups.push(() => terminal.dispose());
  await terminal.opened;
  return { terminal, raw: () => raw, statuses };
}
