import { HangarError, SCHEMA_VERSION, type ErrorShape, type Mux } from '@hangar/shared';

/** Ids far above any a ControlClient on the same link hands out, so answers never mix. */
let nextId = 2 ** 40;

/**
 * Sends a request exactly as given, as a peer that skips ControlClient's checks would, and awaits
 * its answer: for tests of what a server refuses. A ControlClient on the same mux ignores the
 * answer (it has no call with that id).
 */
export function rawCall(mux: Mux, method: string, params: unknown): Promise<unknown> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const subscription = mux.onControl((json) => {
      const message = JSON.parse(json) as {
        kind: string;
        id?: number;
        ok?: boolean;
        result?: unknown;
        error?: ErrorShape;
      };
      if (message.kind !== 'response' || message.id !== id) return;
      void subscription.dispose();
      if (message.ok) resolve(message.result);
      else reject(HangarError.from(message.error!));
    });
    mux.onClose((reason) => reject(new HangarError('E_UNAVAILABLE', `link closed: ${reason.message}`)));
    mux.sendControl(JSON.stringify({ schema_version: SCHEMA_VERSION, kind: 'request', id, method, params }));
  });
}
