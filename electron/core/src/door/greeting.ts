import type { Socket } from 'node:net';
import { z } from 'zod';
import { encodeFrame } from './socket-transport.js';

/** Version of the local door's own framing and greeting (not of the procedures: those carry schema_version). */
export const DOOR_VERSION = 1;
/** A greeting is one short JSON frame; anything longer is not one. */
const MAX_GREETING_BYTES = 4096;

/** What the core says first on every connection to its local socket. */
export const CoreGreeting = z.object({
  hangar: z.literal('core'),
  door: z.literal(DOOR_VERSION),
  pid: z.number().int(),
});
/** What a client says back before any link frame. */
export const ClientGreeting = z.object({ hangar: z.literal('client'), door: z.literal(DOOR_VERSION) });

export function sendGreeting(
  socket: Socket,
  greeting: z.infer<typeof CoreGreeting> | z.infer<typeof ClientGreeting>,
): void {
  socket.write(encodeFrame(new TextEncoder().encode(JSON.stringify(greeting))));
}

export interface Greeted<T> {
  greeting: T;
  /** Bytes that came after the greeting: the first link frames. */
  leftover: Buffer[];
}

/**
 * Reads the other end's greeting: one length-prefixed JSON frame that `schema` accepts, within
 * `timeoutMs`. Rejects with a sentence (for the user) when the peer says something else, nothing,
 * or goes away.
 */
export function readGreeting<T>(socket: Socket, schema: z.ZodType<T>, timeoutMs: number): Promise<Greeted<T>> {
  return new Promise<Greeted<T>>((resolve, reject) => {
    let received = Buffer.alloc(0);
    const done = (error: string | undefined, value?: Greeted<T>) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      if (error !== undefined) reject(new Error(error));
      else resolve(value!);
    };
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 4) return;
      const length = received.readUInt32BE(0);
      if (length > MAX_GREETING_BYTES) return done('it answered with something other than a Hangar greeting');
      if (received.length < 4 + length) return;
      let parsed: T;
      try {
        const json: unknown = JSON.parse(received.subarray(4, 4 + length).toString('utf8'));
        const checked = schema.safeParse(json);
        if (!checked.success) return done('its greeting is not a Hangar core door of this version');
        parsed = checked.data;
      } catch {
        return done('it answered with something other than a Hangar greeting');
      }
      const rest = received.subarray(4 + length);
      done(undefined, { greeting: parsed, leftover: rest.length > 0 ? [rest] : [] });
    };
    const onClose = () => done('it closed the connection without a Hangar greeting');
    const onError = (error: NodeJS.ErrnoException) => done(`the connection failed (${error.code ?? error.message})`);
    const timer = setTimeout(() => done(`it sent no Hangar greeting within ${timeoutMs} ms`), timeoutMs);
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);
  });
}
