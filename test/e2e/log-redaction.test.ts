import { Mux } from '@hangar/shared';
import { describe, expect, it } from 'vitest';
import { connectUi, waitFor } from '../../electron/core/test/api/ui-client.js';
import { loadOrCreateDeviceKey } from '../../electron/core/src/identity/device-key.js';
import { connectToHost } from '../../electron/core/src/link/connect.js';
import { HangarCore } from '../../electron/core/src/index.js';
import { endAgent, hangar, hangarAgent, startAgentProcess, tempDir, type AgentProcess } from '../support/processes.js';
import { startWebUi } from '../support/serving-cli.js';
import { useCleanups } from '../support/cleanups.js';

/**
 * Logs at debug level, captured from a real agent process and a real core (`hangar ui`): every
 * request is there with its method, but no pairing code and no environment value; error codes
 * (E_…, ENOENT) are readable, not "[Redacted]".
 */
describe('logs keep error codes and leave secrets out', () => {
  const cleanup = useCleanups();

  const agentAndHome = async (logLevel?: string) => {
    const dataDir = tempDir('agent');
    const home = tempDir('home');
    let agent: AgentProcess | undefined;
    cleanup.push(() => endAgent(agent, dataDir, home));
    agent = await startAgentProcess(dataDir, logLevel ? { logLevel } : {});
    return { agent, home };
  };
  const pairingCode = async (agent: AgentProcess) =>
    (JSON.parse((await hangarAgent(['pair', '--data', agent.dataDir, '--json'])).stdout) as { code: string }).code;

  it("the agent's debug log", async () => {
    const { agent, home } = await agentAndHome('debug');
    const code = await pairingCode(agent);
    expect((await hangar(home, ['hosts', 'add', 'box', agent.address, '--code', code])).code).toBe(0);
    const created = await hangar(home, [
      'session',
      'new',
      'box',
      '--name',
      'keys',
      '--env',
      'API_TOKEN=tok-0d5e7c1a9b',
      '--',
      'sleep',
      '60',
    ]);
    expect(created.code).toBe(0);

    // A paired device that sends something that is not a request: logged with its error's code.
    const core = await HangarCore.open({ home });
    cleanup.push(() => core.dispose());
    const host = core.registry.get('box');
    const link = await connectToHost({
      address: host.address,
      deviceKey: (await loadOrCreateDeviceKey(home)).privateKey,
      deviceName: 'garbler',
      pinned: { agent_key: host.agent_key, cert_fingerprint: host.cert_fingerprint },
    });
    const mux = new Mux(link.transport, { role: 'client' });
    cleanup.push(() => mux.dispose());
    mux.sendControl('not a request');
    await waitFor(() => agent.stderr().includes('unparseable control message'), 'the warning');

    const log = agent.stderr();
    expect(log).toContain('"method":"session.create"');
    expect(log).toContain('"API_TOKEN":"[Redacted]"');
    expect(log).not.toContain('tok-0d5e7c1a9b');
    expect(log).not.toContain(code);
    const warning = log.split('\n').find((line) => line.includes('unparseable control message'))!;
    expect(JSON.parse(warning).err.code).toMatch(/^E_[A-Z_]+$/);
    expect(log).not.toMatch(/"code":"\[Redacted\]"/);
  });

  it("the core's debug log (web mode)", async () => {
    const { agent, home } = await agentAndHome();
    const web = await startWebUi(home, { HANGAR_LOG_LEVEL: 'debug' });
    cleanup.push(() => web.stop());
    const url = new URL(web.url);
    const ui = await connectUi(Number(url.port), url.hash.replace('#token=', ''));
    cleanup.push(() => ui.close());
    const code = await pairingCode(agent);
    await ui.call('hosts.add', { name: 'box', address: agent.address, code });
    await ui.call('sessions.create', {
      host: 'box',
      session: { name: 'keys', command: ['sleep', '60'], env: { API_TOKEN: 'tok-7f3b2e8d4c' } },
    });
    // The host goes away: the core keeps trying it while the UI is open, and logs why it fails.
    await agent.stop();
    await waitFor(() => web.output().includes('reconnect failed'), 'a failed reconnect', 20_000);

    const log = web.output();
    expect(log).toContain('"method":"hosts.add"');
    expect(log).toContain('"method":"sessions.create"');
    expect(log).not.toContain(code);
    expect(log).not.toContain('tok-7f3b2e8d4c');
    const failed = log.split('\n').find((line) => line.includes('reconnect failed'))!;
    expect(JSON.parse(failed).err.code).toMatch(/^E_(HOST_UNREACHABLE|UNAVAILABLE|TIMEOUT)$/);
  });
});
