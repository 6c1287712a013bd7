import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { connectToCore, CoreClient, describeError } from './api/index.js';
import { App } from './views/app.js';
import './styles.css';

function Root() {
  const [client, setClient] = useState<CoreClient>();
  const [error, setError] = useState<string>();
  const [disconnected, setDisconnected] = useState<string>();
  useEffect(() => {
    let created: CoreClient | undefined;
    let cancelled = false;
    connectToCore().then(
      (transport) => {
        if (cancelled) return transport.close();
        created = new CoreClient(transport);
        created.onDisconnect((reason) => setDisconnected(reason.message));
        setClient(created);
      },
      (e: unknown) => setError(describeError(e)),
    );
    return () => {
      cancelled = true;
      created?.dispose();
    };
  }, []);
  if (error) {
    return (
      <div className="empty-state fatal" role="alert">
        <h1>Hangar</h1>
        <p>{error}</p>
        <button type="button" onClick={() => location.reload()}>
          Reload
        </button>
      </div>
    );
  }
  if (!client) return <p className="empty-state">Connecting to Hangar…</p>;
  return <App api={client} disconnected={disconnected} />;
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <Root />
  </StrictMode>,
);
