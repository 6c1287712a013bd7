/**
 * shared/ compiles without DOM and without @types/node so that a `node:` import fails tsc.
 * These are the few globals that exist in both Node and browsers and that shared code uses.
 */
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array): string;
}
declare function setTimeout(handler: () => void, ms?: number): unknown;
declare function clearTimeout(handle: unknown): void;
declare function setInterval(handler: () => void, ms?: number): unknown;
declare function clearInterval(handle: unknown): void;
declare function queueMicrotask(callback: () => void): void;
declare const crypto: { getRandomValues<T extends Uint8Array>(array: T): T; randomUUID(): string };
declare const performance: { now(): number };
declare class AbortController {
  readonly signal: unknown;
  abort(reason?: unknown): void;
}
