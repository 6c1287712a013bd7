import { useCallback, useEffect, useRef, useState } from 'react';
import { describeError, visibleText, type CoreApi, type HostView, type TaskInfo } from '../api/index.js';
import { useOnlineHosts } from './use-online-hosts.js';

export interface TasksData {
  /** This computer's queue and every host's tasks, newest first; undefined until first listed. */
  tasks: TaskInfo[] | undefined;
  /** Hosts whose tasks could not be listed, with why (their tasks are missing from `tasks`). */
  hostErrors: { host: string; message: string }[];
  /** Hosts that left older tasks out of their listing (a byte bound), with how many. */
  hostTruncated: { host: string; count: number }[];
  /** Why the listing itself failed. */
  error: string | undefined;
  /** A task this window just added or cancelled, shown before its event arrives. */
  addTask(task: TaskInfo): void;
}

/**
 * Agent tasks as the core reports them: listed once, and again when the set of online hosts
 * changes (a host that comes back brings its tasks); every change after that arrives as the core's
 * task.updated (queued here, claimed, working, needs you, ended), so nothing here polls.
 */
export function useTasks(api: CoreApi, hosts: HostView[]): TasksData {
  const [tasks, setTasks] = useState<TaskInfo[]>();
  const [hostErrors, setHostErrors] = useState<{ host: string; message: string }[]>([]);
  const [hostTruncated, setHostTruncated] = useState<{ host: string; count: number }[]>([]);
  const [error, setError] = useState<string>();
  // Events that arrive while a listing is on its way are newer than it: they win.
  const heard = useRef(new Map<string, TaskInfo>());
  const online = useOnlineHosts(hosts);

  const show = useCallback((task: TaskInfo) => {
    heard.current.set(task.id, task);
    setTasks((current) => sortTasks([task, ...(current ?? []).filter((t) => t.id !== task.id)]));
  }, []);

  useEffect(() => {
    const subscription = api.on('task.updated', ({ task }) => show(task));
    return () => void subscription.dispose();
  }, [api, show]);

  useEffect(() => {
    let current = true;
    heard.current.clear();
    api.call('tasks.list', {}).then(
      (result) => {
        if (!current) return;
        const listed = new Map<string, TaskInfo>();
        // A task claimed between the queue's listing and the host's is in both: the host's record is newer.
        for (const task of result.queued) listed.set(task.id, task);
        for (const host of result.hosts) for (const task of host.tasks) listed.set(task.id, task);
        for (const [id, task] of heard.current) listed.set(id, task);
        setTasks(sortTasks([...listed.values()]));
        setHostErrors(
          result.hosts.flatMap((h) => (h.error ? [{ host: h.host, message: visibleText(h.error.message) }] : [])),
        );
        setHostTruncated(
          result.hosts.flatMap((h) => ((h.truncated ?? 0) > 0 ? [{ host: h.host, count: h.truncated! }] : [])),
        );
        setError(undefined);
      },
      (e: unknown) => current && setError(describeError(e)),
    );
    return () => {
      current = false;
    };
  }, [api, online]);

  return { tasks, hostErrors, hostTruncated, error, addTask: show };
}

function sortTasks(tasks: TaskInfo[]): TaskInfo[] {
  return [...tasks].sort((a, b) => b.created_at - a.created_at);
}
