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
