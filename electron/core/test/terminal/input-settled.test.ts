import type { Mux } from '@hangar/shared';
import { describe, expect, it } from 'vitest';
import type { HostConnection } from '../../src/connection/host-connection.js';
import { TerminalClient } from '../../src/terminal/terminal-client.js';
import { useCleanups } from '../../../../test/support/cleanups.js';
import { waitFor } from '../api/ui-client.js';
import { FakeHost } from '../jobs/fake-host.js';

/**
 * `hangar attach` moves a running core's terminal onto a link of its own (issue 17). The running
 * core says where the attachment stands (terminal.attachment) only once the host has acknowledged
 * every key it passed on: a key still on its way when the host switches to the command's link
 * would be lost. TerminalClient.inputSettled is that wait.
 */
const cleanups = useCleanups();
const SIZE = { cols: 80, rows: 24 };
const encoder = new TextEncoder();

/** A fake agent whose terminal stream acks typed keys only when the test says so. */
function hostAckingByHand(): { host: FakeHost; stream: () => ReturnType<Mux['openStream']> } {
  const host = new FakeHost();
  cleanups.push(() => host.dispose());
  let opened: ReturnType<Mux['openStream']> | undefined;
  host.handlers['session.attach'] = (params: { stream_id: number }, agent: Mux) => ({
    answer: { attachment_id: 'att-1', offset: 0, resumed: false },
    after: () => {
      opened = agent.openStream({ id: params.stream_id, sendOffset: 0 });
      opened.autoAck = false;
      opened.write(encoder.encode('$ '));
    },
  });
  return { host, stream: () => opened! };
}

describe('TerminalClient.inputSettled', () => {
  it('answers true only once the host has acknowledged every key written', async () => {
    const { host, stream } = hostAckingByHand();
    const client = await TerminalClient.open(host as unknown as HostConnection, 'work', SIZE);
    cleanups.push(() => client.dispose());
    await waitFor(() => stream() !== undefined, 'the host’s stream');
    let received = 0;
    stream().onData((data) => (received += data.length));
    client.write(encoder.encode('echo hi'));
    await waitFor(() => received === 7, 'the keys at the host');

    let settled: boolean | undefined;
    void client.inputSettled(10_000).then((value) => (settled = value));
    // The keys are at the host, not yet acknowledged: no answer.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).toBeUndefined();
    stream().ack(5);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).toBeUndefined();
    stream().ack(7);
    await waitFor(() => settled !== undefined, 'the answer');
    expect(settled).toBe(true);
  });

  it('answers false when the host has not acknowledged the keys in time', async () => {
    const { host, stream } = hostAckingByHand();
    const client = await TerminalClient.open(host as unknown as HostConnection, 'work', SIZE);
    cleanups.push(() => client.dispose());
    await waitFor(() => stream() !== undefined, 'the host’s stream');
    client.write(encoder.encode('x'));
    expect(await client.inputSettled(100)).toBe(false);
    // Acknowledged later: true as soon as the ack is back.
    stream().ack(1);
    expect(await client.inputSettled(10_000)).toBe(true);
  });
});
