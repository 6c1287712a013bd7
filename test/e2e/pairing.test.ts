import { copyFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';
import { hangar, hangarAgent, pairWith, removeDir, startAgentProcess, tempDir } from '../support/processes.js';

async function issueCode(dataDir: string): Promise<string> {
  const issued = await hangarAgent(['pair', '--data', dataDir, '--json']);
  expect(issued.code).toBe(0);
  return (JSON.parse(issued.stdout) as { code: string }).code;
}

describe('pairing and host keys through the CLI', () => {
  const host = usePairedHost({ unpaired: true });

  const hostCount = async (h = host.home) =>
    JSON.parse((await hangar(h, ['hosts', 'ls', '--json'])).stdout).length as number;

  it('pairs with a one-time code, and the code cannot be used twice', async () => {
    const code = await issueCode(host.dataDir);
    const added = await hangar(host.home, ['hosts', 'add', 'box', host.agent.address, '--code', code]);
    expect(added.stderr).toBe('');
    expect(added.stdout).toMatch(/paired with "box"/);
    expect((await hangar(host.home, ['session', 'ls', 'box'])).code).toBe(0);

    const other = tempDir('home2');
    try {
      const reused = await hangar(other, ['hosts', 'add', 'box', host.agent.address, '--code', code]);
      expect(reused.code).toBe(4);
      expect(reused.stderr).toMatch(/already used/);
      expect(await hostCount(other)).toBe(0);
    } finally {
      removeDir(other);
    }
  });

  it('a wrong code is refused and pairs nothing', async () => {
    const code = await issueCode(host.dataDir);
    const wrong = code === '000-000' ? '111-111' : '000-000';
    const refused = await hangar(host.home, ['hosts', 'add', 'box', host.agent.address, '--code', wrong]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/code/i);
    expect(refused.stderr).not.toMatch(/already used/);
    expect(await hostCount()).toBe(0);
  });

  it('a device the host never paired is refused with its own message', async () => {
    await pairWith(host.home, 'box', host.agent);
    // Same host records, different device key: a copied database does not carry the identity.
    const stranger = tempDir('stranger');
    try {
      for (const file of readdirSync(host.home)) {
        if (file.startsWith('hangar.db')) copyFileSync(join(host.home, file), join(stranger, file));
      }
      const refused = await hangar(stranger, ['session', 'ls', 'box']);
      expect(refused.code).toBe(4);
      expect(refused.stderr).toMatch(/not paired/);
    } finally {
      removeDir(stranger);
    }
  });

  it('a host whose key changed is refused like SSH does, with what to run', async () => {
    await pairWith(host.home, 'box', host.agent);
    await host.agent.stop();
    rmSync(join(host.dataDir, 'identity'), { recursive: true, force: true });
    host.agent = await startAgentProcess(host.dataDir, { port: host.agent.port });
    const refused = await hangar(host.home, ['session', 'ls', 'box']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/hangar hosts rm box/);
    expect(refused.stderr).toMatch(/presented a different (TLS certificate|host key)/);
  });

  it('keeps private keys private (0600) on both ends', async () => {
    await pairWith(host.home, 'box', host.agent);
    const keyFiles = [
      join(host.home, 'device_ed25519.pem'),
      join(host.dataDir, 'identity', 'agent_ed25519.pem'),
      join(host.dataDir, 'identity', 'tls.key'),
    ];
    for (const file of keyFiles) expect((statSync(file).mode & 0o777).toString(8)).toBe('600');
  });

  it('hosts rename gives a host a new name here: same keys and sessions, the old name gone', async () => {
    await pairWith(host.home, 'box', host.agent);
    const before = JSON.parse((await hangar(host.home, ['hosts', 'ls', '--json'])).stdout) as { agent_key: string }[];
    const made = await hangar(host.home, ['session', 'new', 'box', '--name', 'keep', '--', 'sleep', '60']);
    expect(made.code).toBe(0);

    const renamed = await hangar(host.home, ['hosts', 'rename', 'box', 'mini']);
    expect(renamed).toMatchObject({ code: 0, stdout: 'renamed "box" to "mini"\n' });
    const after = JSON.parse((await hangar(host.home, ['hosts', 'ls', '--json'])).stdout) as {
      name: string;
      agent_key: string;
    }[];
    expect(after.map((h) => h.name)).toEqual(['mini']);
    expect(after[0]!.agent_key).toBe(before[0]!.agent_key);
    const sessions = JSON.parse((await hangar(host.home, ['session', 'ls', 'mini', '--json'])).stdout) as {
      sessions: { name: string }[];
    }[];
    expect(sessions[0]!.sessions.map((x) => x.name)).toEqual(['keep']);

    const gone = await hangar(host.home, ['session', 'ls', 'box']);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toContain('no host named "box" (known: mini)');
    // Refused without changing anything: an unknown host, a bad name, a name taken.
    expect((await hangar(host.home, ['hosts', 'rename', 'box', 'other'])).code).toBe(3);
    const bad = await hangar(host.home, ['hosts', 'rename', 'mini', 'no spaces']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/new_name: expected 1-32 letters/);
    await pairWith(host.home, 'vps', host.agent);
    const taken = await hangar(host.home, ['hosts', 'rename', 'mini', 'vps']);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain('a host named "vps" already exists');
    expect((await hangar(host.home, ['hosts', 'ls', '--json'])).stdout).toMatch(/"mini"[\s\S]*"vps"/);
    await hangar(host.home, ['session', 'kill', 'mini', 'keep']);
  });

  it('an address with a scheme or without a port is handled, not guessed', async () => {
    const code = await issueCode(host.dataDir);
    const withScheme = await hangar(host.home, [
      'hosts',
      'add',
      'box',
      `https://${host.agent.address}`,
      '--code',
      code,
    ]);
    expect(withScheme.code).toBe(2);
    expect(withScheme.stderr).toMatch(/without a scheme/);
  });
});
