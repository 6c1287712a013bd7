import { useCallback, useEffect, useRef, useState } from 'react';
import { describeError, type CoreApi, type HostView, type ListeningPort, type PreviewView } from '../api/index.js';
import { useOnlineHosts } from './use-online-hosts.js';

/** One host's previews as last heard from it. */
export interface HostPreviews {
  previews: PreviewView[];
  /** Ports that listen on the host and are not previews yet. */
  listening: ListeningPort[];
  /** Why the last listing failed, in words. */
  error: string | null;
}

export interface PreviewsData {
  /** By host name; a host missing here has not answered yet. */
  byHost: Record<string, HostPreviews>;
  /** Lists again, one host or every online one. */
  refresh(host?: string): void;
  /** Serves the preview on this computer and shows it in a new browser tab. */
  open(host: string, port: number): Promise<void>;
  /** Stops serving it on this computer; the host keeps it. */
  close(host: string, port: number): Promise<void>;
  add(host: string, port: number, label?: string): Promise<void>;
  remove(host: string, port: number): Promise<void>;
}

/**
 * Previews of every online host, listed when it comes online, then pushed on previews.changed:
 * the host tells when a preview is added or removed and, while `watching` (the previews view or
 * the palette, which offers the ports, is shown), when a port starts or stops listening (a dev
 * server started in a session), so nothing here polls. Hosts look for those only while some
 * client watches: a window showing terminals costs them nothing.
 */
export function usePreviews(api: CoreApi, hosts: HostView[], watching: boolean): PreviewsData {
  const [byHost, setByHost] = useState<Record<string, HostPreviews>>({});
  // A listing answered after a newer one was asked for is stale: only the newest counts.
  const generation = useRef(new Map<string, number>());
  const online = useOnlineHosts(hosts);

  const refreshHost = useCallback(
    (host: string) => {
      const asked = (generation.current.get(host) ?? 0) + 1;
      generation.current.set(host, asked);
      const current = () => generation.current.get(host) === asked;
      api.call('previews.list', { host }).then(
        (result) => {
          const listed = result.hosts.find((h) => h.host === host);
          if (!current() || !listed) return;
          setByHost((all) => ({
            ...all,
            [host]: { previews: listed.previews, listening: listed.listening, error: listed.error?.message ?? null },
          }));
        },
        (error: unknown) => {
          if (!current()) return;
          setByHost((all) => ({
            ...all,
            [host]: { previews: all[host]?.previews ?? [], listening: [], error: describeError(error) },
          }));
        },
      );
    },
    [api],
  );

  const refresh = useCallback(
    (host?: string) => {
      for (const name of host ? online.filter((n) => n === host) : online) refreshHost(name);
    },
    [online, refreshHost],
  );

  // A host that comes online is listed; one that goes away is forgotten.
  useEffect(() => {
    for (const name of online) refreshHost(name);
    setByHost((all) => Object.fromEntries(Object.entries(all).filter(([name]) => online.includes(name))));
  }, [online, refreshHost]);

  // While shown, the hosts watch their ports (the view lists what listens when it is shown: ports
  // may have moved while nobody looked). Hidden, or the window gone: the hosts stop looking.
  useEffect(() => {
    if (!watching) return;
    const fail = (error: unknown) =>
      setByHost((all) =>
        Object.fromEntries(
          Object.entries(all).map(([host, listed]) => [host, { ...listed, error: describeError(error) }]),
        ),
      );
    api.call('previews.watch', { watch: true }).catch(fail);
    return () => void api.call('previews.watch', { watch: false }).catch(fail);
  }, [api, watching]);

  useEffect(() => {
    const subscription = api.on('previews.changed', ({ host, previews, listening }) => {
      // A newer event wins over a listing still on its way.
      generation.current.set(host, (generation.current.get(host) ?? 0) + 1);
      setByHost((all) => ({ ...all, [host]: { previews, listening, error: null } }));
    });
    return () => void subscription.dispose();
  }, [api]);

  const open = useCallback(
    async (host: string, port: number) => {
      const { url } = await api.call('previews.open', { host, port });
      // In Electron the main process sends an http(s) window.open to the user's browser.
      window.open(url, '_blank', 'noopener,noreferrer');
    },
    [api],
  );
  const close = useCallback(
    async (host: string, port: number) => {
      await api.call('previews.close', { host, port });
    },
    [api],
  );
  const add = useCallback(
    async (host: string, port: number, label?: string) => {
      const added = await api.call('previews.add', { host, port, ...(label ? { label } : {}) });
      // Shown at once; the host's previews.changed follows with the same list. A listing asked for
      // before the Add and answered after it would bring the old list back: it no longer counts.
      generation.current.set(host, (generation.current.get(host) ?? 0) + 1);
      setByHost((all) => {
        const before = all[host] ?? { previews: [], listening: [], error: null };
        return {
          ...all,
          [host]: {
            ...before,
            previews: [...before.previews.filter((p) => p.port !== port), added].sort((a, b) => a.port - b.port),
            listening: before.listening.filter((l) => l.port !== port),
          },
        };
      });
    },
    [api],
  );
  const remove = useCallback(
    async (host: string, port: number) => {
      await api.call('previews.remove', { host, port });
      refreshHost(host);
    },
    [api, refreshHost],
  );

  return { byHost, refresh, open, close, add, remove };
}
