import { closeSync } from 'node:fs';
import { laneRelayOptions, type NativeLanes, type Relay } from '@hangar/lane';
import type { LanePurposeHandler, LaneTaken } from '../link/lanes.js';
import type { TerminalBindings } from './terminal-bindings.js';

/**
 * The lane purpose `terminal` (lane/PROTOCOL.md, "Purposes: terminal"): an attached terminal's keys
 * and output move from its mux stream onto the lane, relayed natively between the lane and the
 * tmux client's pty master. Only the device that owns the attachment may move it, on a lane of
 * its own link (TerminalBindings.takeForLane says what else is checked).
 */
export function terminalLanes(bindings: TerminalBindings, native: NativeLanes): LanePurposeHandler<'terminal'> {
  return async (hello, link, log): Promise<LaneTaken> => {
    const taken = await bindings.takeForLane(hello.attachment_id, link, hello.input_offset, log);
    // Duplicated at once, before the ACCEPT goes out: a session that ends meanwhile closes
    // node-pty's fd (its number could then be another file's), while this one stays the pty's
    // master, read to its end by the relay ahead of the CLOSE that says how it ended.
    let pty: number | undefined;
    try {
      pty = native.dupFd(taken.masterFd);
    } catch (error) {
      taken.abandon();
      throw error;
    }
    const closePty = () => {
      if (pty !== undefined) closeSync(pty);
      pty = undefined;
    };
    return {
      accept: {},
      run(lane) {
        const local = pty;
        if (local === undefined) throw new Error('the lane already ran or was abandoned');
        let netFd: number | undefined;
        let relay: Relay;
        try {
          const net = native.adoptSocket(lane.socket);
          netFd = net.fd;
          relay = native.relay({
            ...laneRelayOptions(lane, net),
            localRead: local,
            localWrite: local,
            closeLocal: true,
            localKind: 'pty',
          });
        } catch (error) {
          closePty();
          if (netFd !== undefined) closeSync(netFd);
          throw error;
        }
        // The relay owns it now (closeLocal).
        pty = undefined;
        taken.run(relay);
        return relay;
      },
      abandon: () => {
        closePty();
        taken.abandon();
      },
    };
  };
}
