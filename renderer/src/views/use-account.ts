import { useCallback, useEffect, useState } from 'react';
import { describeError, type AccountStatus, type CoreApi, type DeviceEntry } from '../api/index.js';

export interface AccountState {
  /** undefined until the core answered; `account: null` when signed out. */
  status: AccountStatus | undefined;
  error: string | undefined;
  /** New devices waiting for this (trusted) one to approve them, newest last. */
  pending: DeviceEntry[];
  /** Forget a pending device here (approved, or "not now"); the relay still lists it. */
  dismiss(deviceId: string): void;
}

/** The account as the core reports it (pushed on change), and the devices that asked to join. */
export function useAccount(api: CoreApi): AccountState {
  const [status, setStatus] = useState<AccountStatus>();
  const [error, setError] = useState<string>();
  const [pending, setPending] = useState<DeviceEntry[]>([]);
  useEffect(() => {
    const subscriptions = [
      api.on('account.changed', (next) => {
        setStatus(next);
        setError(undefined);
      }),
      api.on('device.pending', ({ device }) =>
        setPending((current) => [...current.filter((d) => d.device_id !== device.device_id), device]),
      ),
    ];
    api.call('account.status', {}).then(setStatus, (e: unknown) => setError(describeError(e)));
    return () => {
      for (const subscription of subscriptions) void subscription.dispose();
    };
  }, [api]);
  const dismiss = useCallback(
    (deviceId: string) => setPending((current) => current.filter((d) => d.device_id !== deviceId)),
    [],
  );
  return { status, error, pending, dismiss };
}
