import { spawnSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION, encodeLinkMessage, toHex, type ErrorShape } from '@hangar/shared';
import {
  endAgent,
  hangar,
  hangarAgent,
  removeDir,
  startAgentProcess,
  tempDir,
  type AgentProcess,
} from '../support/processes.js';
import { handshake, newDeviceKey, openRawLink, until, type Pins, type RawLink } from '../support/raw-link.js';

const SECRET_HOSTNAME = 'hangar-secret-hostname';

/**
 * Argv that runs a command in a UTS namespace of its own with the given host name: as root a
 * UTS namespace is enough; without CAP_SYS_ADMIN (a container, a user) a user namespace that
 * maps us to root lets us make one.
 */
function withHostname(name: string): string[] {
  for (const unshare of [
    ['unshare', '--uts'],
    ['unshare', '--user', '--map-root-user', '--uts'],
  ]) {
    if (spawnSync(unshare[0]!, [...unshare.slice(1), 'hostname', name]).status === 0) {
      return [...unshare, 'sh', '-c', `hostname ${name} && exec "$@"`, 'sh'];
    }
  }
  throw new Error('cannot give the agent a host name of its own here: unshare --uts fails, with and without --user');
}

/**
 * Pairing is open to anyone who can reach the agent's port, so it must not let one peer spend
 * another's attempts, and must not tell a peer that never paired anything about the host.
 */
describe('pairing against peers that never paired', () => {
  let home: string;
  let dataDir: string;
  let agent: AgentProcess;
  const links: RawLink[] = [];

  beforeEach(async () => {
    home = tempDir('home');
    dataDir = tempDir('agent');
    // Its own UTS namespace, so the agent's host name is one no refusal could contain by chance.
    agent = await startAgentProcess(dataDir, { wrapper: withHostname(SECRET_HOSTNAME) });
  });

  afterEach(async () => {
    for (const link of links.splice(0)) link.destroy();
    await endAgent(agent, home, dataDir);
  });

  const issueCode = async () => {
    const issued = await hangarAgent(['pair', '--data', dataDir, '--json']);
    expect(issued.code).toBe(0);
    return (JSON.parse(issued.stdout) as { code: string }).code;
  };

  const open = async (source: string) => {
    const link = await openRawLink(agent.address, source);
    links.push(link);
    return link;
  };

  /** Runs a whole handshake from `source`; returns the agent's refusal as sent, if it refused. */
  const refusalFor = async (source: string, mode: { code: string } | { pins: Pins }) => {
    const link = await open(source);
    const outcome = await handshake(link, newDeviceKey(), mode).then(
      () => 'accepted',
      (error: Error) => error.message,
    );
    link.destroy();
    const refusal = link.refusals[0];
    if (refusal === undefined) throw new Error(`expected a refusal from the agent, got: ${outcome}`);
    return refusal;
  };

  /** Says hello in pair mode and leaves after the first answer: costs an attempt, guesses nothing. */
  const startPairingAndLeave = async (source: string): Promise<ErrorShape | undefined> => {
    const link = await open(source);
    const answered = new Promise<void>((resolve) => {
      link.transport.onFrame(() => resolve());
      link.transport.onClose(() => resolve());
    });
    link.transport.send(
      encodeLinkMessage({
        schema_version: SCHEMA_VERSION,
        kind: 'link.hello',
        mode: 'pair',
        device_key: toHex(new Uint8Array(32).fill(7)),
        device_name: 'spender',
        nonce: toHex(new Uint8Array(32)),
      }),
    );
    await answered;
    link.destroy();
    links.splice(links.indexOf(link), 1);
    return link.refusals[0];
  };

  it("a peer spending pairing attempts from its address does not spend the owner's; a fresh code still pairs", async () => {
    // The peer burns the first code with wrong guesses (the per-code limit, shared by everyone)…
    const first = await issueCode();
    const wrong = first === '000-000' ? '000-001' : '000-000';
    let guesses = 0;
    for (const deadline = Date.now() + 20_000; guesses < 5 && Date.now() < deadline;) {
      const refusal = await refusalFor('127.0.0.2', { code: wrong });
      const wait = refusal.details?.['retry_after_ms'];
      if (typeof wait === 'number') await new Promise((resolve) => setTimeout(resolve, wait));
      else guesses++;
    }
    expect(guesses).toBe(5);

    // …then keeps its bucket empty while the owner pairs with a new code from another address.
    const fresh = await issueCode();
    let spending = true;
    const refusedSpender: string[] = [];
    const spend = async () => {
      while (spending) {
        const refusal = await startPairingAndLeave('127.0.0.2');
        if (refusal) refusedSpender.push(refusal.code);
      }
    };
    const spenders = [spend(), spend()];
    try {
      await until(() => refusedSpender.includes('E_AUTH_RATE_LIMITED'), 10_000, 'the spender is rate limited');
      const added = await hangar(home, ['hosts', 'add', 'box', agent.address, '--code', fresh]);
      expect(added.stderr).toBe('');
      expect(added.code).toBe(0);
    } finally {
      spending = false;
      await Promise.all(spenders);
    }
    expect((await hangar(home, ['session', 'ls', 'box'])).code).toBe(0);
  });

  it('refusals before authentication name no host, and do not say whether a code is active or how many tries remain', async () => {
    // From a new source each time, so the rate limit never answers instead.
    let source = 10;
    const next = () => `127.0.0.${source++}`;
    const noCode = await refusalFor(next(), { code: '123-456' });

    const code = await issueCode();
    const paired = await open(next());
    const pins = await handshake(paired, newDeviceKey(), { code });
    const unknownDevice = await refusalFor(next(), { pins });

    const active = await issueCode();
    const wrong = active === '000-000' ? '000-001' : '000-000';
    const wrongGuesses: ErrorShape[] = [];
    for (let i = 0; i < 6; i++) wrongGuesses.push(await refusalFor(next(), { code: wrong }));

    const all = [noCode, unknownDevice, ...wrongGuesses];
    for (const refusal of all) {
      expect(JSON.stringify(refusal)).not.toContain(SECRET_HOSTNAME);
      expect(refusal.message).not.toMatch(/attempts? left|no pairing code|active/i);
      expect(refusal.details).toBeUndefined();
    }
    expect(unknownDevice.code).toBe('E_AUTH_UNKNOWN_DEVICE');
    // No code, an active code guessed wrong, a code burned by the guesses: one and the same answer.
    for (const refusal of wrongGuesses) expect(refusal).toEqual(noCode);
  });

  it("the owner's CLI still says what is wrong with the code, from what it knows itself", async () => {
    const code = await issueCode();
    const wrong = code === '000-000' ? '000-001' : '000-000';
    const refused = await hangar(home, ['hosts', 'add', 'box', agent.address, '--code', wrong]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/host "box" at 127\.0\.0\.1:\d+ did not accept the pairing code/);
    expect(refused.stderr).toContain('hangar-agent pair');
    expect(refused.stderr).not.toContain(SECRET_HOSTNAME);

    expect((await hangar(home, ['hosts', 'add', 'box', agent.address, '--code', code])).code).toBe(0);
    const other = tempDir('other');
    try {
      const reused = await hangar(other, ['hosts', 'add', 'box', agent.address, '--code', code]);
      expect(reused.code).toBe(4);
      expect(reused.stderr).toMatch(/already used/);
    } finally {
      removeDir(other);
    }
  });
});
