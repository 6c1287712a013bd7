import { useCallback, useEffect, useState } from 'react';
import { describeError, visibleText, type HostView, type ListeningPort, type PreviewView } from '../api/index.js';
import { AddPreviewForm } from '../components/add-preview-form.js';
import type { HostPreviews, PreviewsData } from './use-previews.js';

export interface PreviewsViewProps {
  hosts: HostView[];
  previews: PreviewsData;
}

/** Dev servers on each host, served on this computer: open, stop, remove, and ports to add. */
export default function PreviewsView({ hosts, previews }: PreviewsViewProps) {
  const { refresh } = previews;
  // Events keep the lists current; showing the view lists once more, in case one was missed.
  useEffect(() => refresh(), [refresh]);

  if (hosts.length === 0) {
    return (
      <div className="previews">
        <p className="empty-state">
          No hosts yet. Add a host, start a dev server there, and it shows here to open on this computer.
        </p>
      </div>
    );
  }
  return (
    <div className="previews">
      <p className="previews-intro muted">
        A preview serves a port of a host (a dev server, HMR included) at a <code>localhost</code> address on this
        computer.
      </p>
      {hosts.map((host) => (
        <HostPreviewsPanel key={host.name} host={host} listed={previews.byHost[host.name]} previews={previews} />
      ))}
    </div>
  );
}

function HostPreviewsPanel({
  host,
  listed,
  previews,
}: {
  host: HostView;
  listed: HostPreviews | undefined;
  previews: PreviewsData;
}) {
  const name = host.name;
  const [busy, setBusy] = useState<ReadonlySet<number>>(new Set());
  const [problem, setProblem] = useState<string>();
  const act = useCallback((port: number, action: () => Promise<void>) => {
    setBusy((ports) => new Set(ports).add(port));
    setProblem(undefined);
    action().then(
      () => setBusy((ports) => without(ports, port)),
      (error: unknown) => {
        setBusy((ports) => without(ports, port));
        setProblem(describeError(error));
      },
    );
  }, []);

  return (
    <section className="preview-host" aria-label={`Previews on ${name}`}>
      <header className="preview-host-header">
        <span className={`status-dot status-${host.status}`} aria-hidden="true" />
        <h2>{name}</h2>
        {host.status === 'online' && (
          <button
            type="button"
            className="preview-refresh"
            onClick={() => previews.refresh(name)}
            aria-label={`Refresh previews on ${name}`}
          >
            Refresh
          </button>
        )}
      </header>
      {host.status === 'offline' ? (
        <p className="host-error" role="status">
          {name} is offline{host.error ? `: ${visibleText(host.error)}` : ''}. Its previews show here once it is back
          online.
        </p>
      ) : host.status === 'connecting' ? (
        <p className="muted" role="status">
          Connecting to {name}…
        </p>
      ) : listed === undefined ? (
        <p className="muted">Loading previews…</p>
      ) : (
        <>
          {listed.error && (
            <p className="host-error" role="alert">
              Could not list the previews on {name}: {visibleText(listed.error)}
            </p>
          )}
          {problem && (
            <p className="host-error" role="alert">
              {problem}
            </p>
          )}
          {listed.previews.length === 0 ? (
            <p className="empty-state">No previews on {name}. Start a dev server there, or add a port below.</p>
          ) : (
            <ul className="preview-list" aria-label={`Previews of ${name}`}>
              {listed.previews.map((preview) => (
                <PreviewRow
                  key={preview.port}
                  host={name}
                  preview={preview}
                  busy={busy.has(preview.port)}
                  onOpen={() => act(preview.port, () => previews.open(name, preview.port))}
                  onClose={() => act(preview.port, () => previews.close(name, preview.port))}
                  onRemove={() => act(preview.port, () => previews.remove(name, preview.port))}
                />
              ))}
            </ul>
          )}
          <Candidates
            host={name}
            listening={listed.listening}
            busy={busy}
            onAdd={(port) => act(port, () => previews.add(name, port))}
          />
          <AddPreviewForm host={name} onAdd={(port, label) => previews.add(name, port, label)} />
        </>
      )}
    </section>
  );
}

function PreviewRow({
  host,
  preview,
  busy,
  onOpen,
  onClose,
  onRemove,
}: {
  host: string;
  preview: PreviewView;
  busy: boolean;
  onOpen(): void;
  onClose(): void;
  onRemove(): void;
}) {
  const target = `${host}:${preview.port}`;
  return (
    <li className="preview" aria-label={`Preview ${target}`}>
      <span className="preview-port">:{preview.port}</span>
      <span className="preview-label">
        {preview.label !== null ? visibleText(preview.label) : <span className="muted">no label</span>}
      </span>
      <span className={preview.listening ? 'preview-state listening' : 'preview-state idle'}>
        {preview.listening ? 'listening' : `nothing listens on ${preview.port}`}
      </span>
      <span className="preview-local">
        {preview.local_url ? (
          <>
            served at{' '}
            <a href={preview.local_url} target="_blank" rel="noopener noreferrer">
              {preview.local_url}
            </a>
          </>
        ) : (
          <span className="muted">not served here</span>
        )}
      </span>
      <span className="preview-actions">
        <button type="button" disabled={busy} onClick={onOpen} aria-label={`Open preview ${target}`}>
          Open
        </button>
        {preview.local_url && (
          <button type="button" disabled={busy} onClick={onClose} aria-label={`Stop serving preview ${target}`}>
            Stop serving
          </button>
        )}
        <button type="button" disabled={busy} onClick={onRemove} aria-label={`Remove preview ${target}`}>
          Remove
        </button>
      </span>
    </li>
  );
}

function Candidates({
  host,
  listening,
  busy,
  onAdd,
}: {
  host: string;
  listening: ListeningPort[];
  busy: ReadonlySet<number>;
  onAdd(port: number): void;
}) {
  return (
    <div className="preview-candidates">
      <h3>Listening on {host}, not previews yet</h3>
      {listening.length === 0 ? (
        <p className="muted">Nothing else listens on {host}. Start a dev server there, then Refresh.</p>
      ) : (
        <ul className="candidate-list" aria-label={`Listening ports on ${host}`}>
          {listening.map((candidate) => (
            <li key={candidate.port} className="candidate">
              <span className="preview-port">:{candidate.port}</span>
              <span className="candidate-process">
                {candidate.process !== null ? (
                  visibleText(candidate.process)
                ) : (
                  <span className="muted">unknown process</span>
                )}
                {candidate.pid !== null && <span className="muted"> (pid {candidate.pid})</span>}
              </span>
              <span className="muted">{candidate.address}</span>
              <button
                type="button"
                disabled={busy.has(candidate.port)}
                onClick={() => onAdd(candidate.port)}
                aria-label={`Add preview ${host}:${candidate.port}`}
              >
                Add preview
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function without(ports: ReadonlySet<number>, port: number): ReadonlySet<number> {
  const next = new Set(ports);
  next.delete(port);
  return next;
}
