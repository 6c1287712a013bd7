import {
  CoreApiClient,
  toHangarError,
  visibleText,
  type CloseReason,
  type CoreCallParams,
  type CoreCallResult,
  type CoreEvent,
  type CoreEventData,
  type CoreMethod,
  type Disposable,
  type LinkStream,
  type OpenStreamOptions,
} from '@hangar/shared';

export type { CoreEventData };

/**
 * What views need from the core: shared's CoreApiClient (the one client every door uses) is the
 * real one; component tests pass a stand-in.
 */
export interface CoreApi {
  call<M extends CoreMethod>(method: M, params: CoreCallParams<M>): Promise<CoreCallResult<M>>;
  on<E extends CoreEvent>(event: E, listener: (data: CoreEventData<E>) => void): Disposable;
  /** A stream of ours for terminal output or a job log; the caller acks what it has rendered. */
  openStream(options?: OpenStreamOptions): LinkStream;
  onDisconnect(listener: (reason: CloseReason) => void): Disposable;
}

/** The window's client of the core, over the transport connectToCore() made. */
export { CoreApiClient as CoreClient };

/** An error's message for display; it may quote host text, so control characters are shown as escapes. */
export function describeError(error: unknown): string {
  return visibleText(toHangarError(error).message);
}

/**
 * The fields a refused call named (E_BAD_REQUEST from a schema check, in the window or in the
 * core), each with what was wrong, by dotted path: `spec.cwd` → "expected an absolute directory…".
 * A form marks those fields; the error's message still says it all in one line.
 */
export function badFields(error: unknown): Map<string, string> {
  const fields = new Map<string, string>();
  const hangarError = toHangarError(error);
  if (hangarError.code !== 'E_BAD_REQUEST') return fields;
  const issues = hangarError.details?.['issues'];
  if (!Array.isArray(issues)) return fields;
  for (const issue of issues as unknown[]) {
    const { path, message } = (issue ?? {}) as { path?: unknown; message?: unknown };
    if (!Array.isArray(path) || typeof message !== 'string') continue;
    const key = path.map(String).join('.');
    if (!fields.has(key)) fields.set(key, visibleText(message));
  }
  return fields;
}
