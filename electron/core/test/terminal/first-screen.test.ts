import { TERMINAL_CLOSE, type CloseReason, type Mux } from '@hangar/shared';
import { describe, expect, it } from 'vitest';
import type { HostConnection } from '../../src/connection/host-connection.js';
import { TerminalClient } from '../../src/terminal/terminal-client.js';
import { useCleanups } from '../../../../test/support/cleanups.js';
import { waitFor } from '../api/ui-client.js';
import { FakeHost } from '../jobs/fake-host.js';

/**
 * The host writes a terminal's first screen right behind its answer to session.attach, and both
 * can arrive in one delivery (a busy machine, a relayed link): the core handles the output at
 * once and the answer a microtask later. The memory link delivers in batches, so here they always
 * come together. A listener subscribed only once the attach has returned lost that screen, and a
 * terminal attached to an idle shell then showed nothing at all (mesh-udp-blocked's "no $ "
 * failures): the client's listeners are now given before it attaches.
 */
const cleanups = useCleanups();
const SIZE = { cols: 80, rows: 24 };
const encoder = new TextEncoder();

/** A fake agent whose session.attach writes `screen` right behind its answer, then runs `then` on the stream. */
function hostWritingBehindItsAnswer(screen: string, then?: (stream: ReturnType<Mux['openStream']>) => void): FakeHost {
  const host = new FakeHost();
  cleanups.push(() => host.dispose());
  host.handlers['session.attach'] = (params: { stream_id: number }, agent: Mux) => ({
    answer: { attachment_id: 'att-1', offset: 0, resumed: false },
    after: () => {
      const stream = agent.openStream({ id: params.stream_id, sendOffset: 0 });
      stream.write(encoder.encode(screen));
      then?.(stream);
    },
  });
  return host;
}

describe('a terminal’s first screen, arriving with the attach’s answer', () => {
  it('reaches a listener given to open, in full, and is acked from there', async () => {
    const host = hostWritingBehindItsAnswer('user@mini:~$ ');
    let shown = '';
    let last = 0;
    const client = await TerminalClient.open(host as unknown as HostConnection, 'work', SIZE, (c) =>
      c.onOutput(({ data, offset }) => {
        shown += Buffer.from(data).toString();
        last = offset + data.length;
      }),
    );
    cleanups.push(() => client.dispose());
    await waitFor(() => shown === 'user@mini:~$ ', 'the first screen');
    expect(client.offset).toBe(last);
    client.ack(last);
    // The ack reaches the host: its stream counts every byte taken.
    const agentStream = host.agent!.getStream(host.calls[0]!.params.stream_id)!;
    await waitFor(() => agentStream.peerAckedOffset === last, 'the ack at the host');
  });

  it('a session that ends right behind its first screen ends the terminal, with its exit code', async () => {
    const host = hostWritingBehindItsAnswer('bye\r\n', (stream) =>
      stream.close({ code: TERMINAL_CLOSE.ended, message: 'the session ended', exit_code: 3 }),
    );
    let shown = '';
    let end: CloseReason | undefined;
    const client = await TerminalClient.open(host as unknown as HostConnection, 'work', SIZE, (c) => {
      c.onOutput(({ data }) => (shown += Buffer.from(data).toString()));
      c.onEnd((reason) => (end = reason));
    });
    cleanups.push(() => client.dispose());
    await waitFor(() => end !== undefined, 'the end');
    expect(shown).toBe('bye\r\n');
    expect(end).toMatchObject({ code: TERMINAL_CLOSE.ended, exit_code: 3 });
  });
});
