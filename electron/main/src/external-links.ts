import { isWebUrl } from '@hangar/desktop/core';

/**
 * What the window does with window.open (terminal links, "Open preview"): web pages go to the
 * user's browser, nothing ever opens inside the app (it would get the app's privileges), and
 * other schemes (file:, custom ones that start programs) go nowhere.
 */
export function windowOpenHandler(
  openExternal: (url: string) => Promise<void>,
  onError: (error: unknown, url: string) => void,
): (details: { url: string }) => { action: 'deny' } {
  return ({ url }) => {
    if (isWebUrl(url)) openExternal(url).catch((error: unknown) => onError(error, url));
    return { action: 'deny' };
  };
}
