import { generateKeyPairSync } from 'node:crypto';
import { chownSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Mux, type CloseReason } from '@hangar/shared';
import { describe, expect, it } from 'vitest';
import { connectToHost } from '../../src/link/connect.js';
import * as processes from '../../../../test/support/processes.js';
import { refusal } from '../../../../test/support/refusal.js';
import { cleanupAfterEach, pairingCode, startTestAgent } from '../api/agent-fixture.js';

const cleanup = cleanupAfterEach();

/**
 * A lost laptop, without a relay: the host's owner runs `hangar-agent unpair` on the host. The
 * laptop's open link ends at once and its next one is refused; other devices keep theirs.
 */
describe('hangar-agent unpair', () => {
  it("ends the unpaired device's open link, refuses its next, and leaves the other devices be", async () => {
    const agent = await startTestAgent(cleanup, 'hangar-unpair-');
    const pair = async (name: string) => {
      const deviceKey = generateKeyPairSync('ed25519').privateKey;
      const paired = await connectToHost({
        address: agent.address,
        deviceKey,
        deviceName: name,
        pairingCode: await pairingCode(agent),
      });
      // A mux answers the agent's heartbeats, so only the unpairing can end this link.
      const mux = new Mux(paired.transport, { role: 'client' });
      cleanup.push(() => mux.close());
      return {
        mux,
        deviceKey,
        paired,
        pinned: { agent_key: paired.agent_key, cert_fingerprint: paired.cert_fingerprint },
      };
    };
    const lost = await pair('lost-laptop');
    const kept = await pair('desktop');
    const closes = (link: typeof lost) => new Promise<CloseReason>((resolve) => link.mux.onClose(resolve));
    const lostClosed = closes(lost);
    let keptClosed: CloseReason | undefined;
    void closes(kept).then((reason) => (keptClosed = reason));

    const unpaired = await processes.hangarAgent(['unpair', 'lost-laptop', '--data', agent.dataDir]);
    expect(unpaired).toMatchObject({ code: 0, stdout: expect.stringMatching(/^unpaired lost-laptop/) });
    expect((await lostClosed).code).toBe('E_AUTH_UNKNOWN_DEVICE');
    const again = await refusal(
      connectToHost({
        address: agent.address,
        deviceKey: lost.deviceKey,
        deviceName: 'lost-laptop',
        pinned: lost.pinned,
      }),
    );
    expect(again.code).toBe('E_AUTH_UNKNOWN_DEVICE');

    // The other device's link stayed open, and it links again as before.
    expect(keptClosed).toBeUndefined();
    const next = await connectToHost({
      address: agent.address,
      deviceKey: kept.deviceKey,
      deviceName: 'desktop',
      pinned: kept.pinned,
    });
    next.transport.close();
    const twice = await processes.hangarAgent(['unpair', 'lost-laptop', '--data', agent.dataDir]);
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toMatch(/no paired device is named or has a key starting "lost-laptop"/);
  });

  // The installed agent runs as its own user; its owner runs `sudo hangar-agent unpair`. A file root
  // made there and kept (0600) would stop that agent from starting (it opens `unpaired` to append).
  it.skipIf(process.getuid?.() !== 0)(
    "run as root, leaves what it writes in the data dir to the agent's user (the agent down, from before unpair existed)",
    async () => {
      const agent = await startTestAgent(cleanup, 'hangar-unpair-');
      const paired = await connectToHost({
        address: agent.address,
        deviceKey: generateKeyPairSync('ed25519').privateKey,
        deviceName: 'lost-laptop',
        pairingCode: await pairingCode(agent),
      });
      paired.transport.close();
      await agent.stop();
      rmSync(join(agent.dataDir, 'unpaired'));
      const agentUser = 65534;
      const chownAll = (dir: string) => {
        chownSync(dir, agentUser, agentUser);
        for (const entry of readdirSync(dir, { withFileTypes: true })) {
          if (entry.isDirectory()) chownAll(join(dir, entry.name));
          else chownSync(join(dir, entry.name), agentUser, agentUser);
        }
      };
      chownAll(agent.dataDir);
      const unpaired = await processes.hangarAgent(['unpair', 'lost-laptop', '--data', agent.dataDir]);
      expect(unpaired).toMatchObject({ code: 0 });
      const owners = readdirSync(agent.dataDir).map((name) => [name, statSync(join(agent.dataDir, name)).uid]);
      expect(owners).toContainEqual(['unpaired', agentUser]);
      expect(owners.filter(([, uid]) => uid !== agentUser)).toEqual([]);
    },
  );
});
