import { describe, expect, it } from 'vitest';
import { usePairedHost } from '../support/paired-host.js';

describe('hangar attach over a lane', () => {
  const box = usePairedHost({ agent: { logLevel: 'info' } });

  it('typed text echoes over a lane', async () => {
    const client = await box.bashAttached('lane');
    client.type('echo one\r');
    await client.waitForText(/^one$/m);
    await new Promise((r) => setTimeout(r, 500));
    client.type('echo two\r');
    await client.waitForText(/^two$/m);
    console.log(box.agent.stderr().split('\n').filter((l) => /lane/i.test(l)).join('\n'));
    console.log(client.raw.slice(-300));
  });
});
