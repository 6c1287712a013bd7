import type { Socket } from 'node:net';
import { encodeFrame } from './socket-transport.js';

/** Version of the local door's own framing and greeting (not of the procedures: those carry schema_version). */
export const DOOR_VERSION = 1;
/** A greeting is one short JSON frame; anything longer is not one. */
const MAX_GREETING_BYTES = 4096;

/** What the core says first on every connection to its local socket (schema: greeting-schemas.ts). */
export interface CoreGreeting {
  hangar: 'core';
  door: typeof DOOR_VERSION;
  pid: number;
  /** protocolFingerprint() of the core's tables (fingerprint.ts); absent when it has none. */
  protocol?: string;
}
/** What a client says back before any link frame. */
export interface ClientGreeting {
  hangar: 'client';
  door: typeof DOOR_VERSION;
}

/** A greeting's check: its value, or undefined for anything else. */
export type GreetingCheck<T> = (value: unknown) => T | undefined;

/**
 * The core's greeting, checked by hand: this is the hangar command's side, which loads no zod on
 * its way to a running core (issue 18). The door's tests hold it to the CoreGreeting schema's
 * verdicts (greeting-schemas.ts).
 */
export const isCoreGreeting: GreetingCheck<CoreGreeting> = (value) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { hangar, door, pid, protocol } = value as Record<string, unknown>;
  if (hangar !== 'core' || door !== DOOR_VERSION || !Number.isSafeInteger(pid)) return undefined;
  if (protocol !== undefined && (typeof protocol !== 'string' || protocol.length > 128)) return undefined;
  return { hangar, door, pid: pid as number, ...(protocol !== undefined ? { protocol } : {}) };
};

export function sendGreeting(socket: Socket, greeting: CoreGreeting | ClientGreeting): void {
  socket.write(encodeFrame(new TextEncoder().encode(JSON.stringify(greeting))));
}

export interface Greeted<T> {
  greeting: T;
  /** Bytes that came after the greeting: the first link frames. */
  leftover: Buffer[];
}

/**
 * Reads the other end's greeting: one length-prefixed JSON frame that `check` accepts, within
 * `timeoutMs`. Rejects with a sentence (for the user) when the peer says something else, nothing,
 * or goes away.
 */
export function readGreeting<T>(socket: Socket, check: GreetingCheck<T>, timeoutMs: number): Promise<Greeted<T>> {
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
      let parsed: T | undefined;
      try {
        parsed = check(JSON.parse(received.subarray(4, 4 + length).toString('utf8')));
      } catch {
        return done('it answered with something other than a Hangar greeting');
      }
      if (parsed === undefined) return done('its greeting is not a Hangar core door of this version');
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
