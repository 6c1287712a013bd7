import {
  HangarError,
  toHangarError,
  type AgentToRelay,
  type DeviceToRelay,
  type RelayToAgent,
  type RelayToDevice,
} from '@hangar/shared';
import { isTrusted, requireTrusted } from '../api/call.js';
import type { RelayContext } from '../context.js';
import type { AgentConnection } from './agent-connection.js';
import type { DeviceConnection } from './device-connection.js';
import type { Peer, SocketHub } from './hub.js';
import { accountRow } from '../store/account-rows.js';

type Sender = { kind: 'host'; connection: AgentConnection } | { kind: 'device'; connection: DeviceConnection };
type SignalIn = Extract<AgentToRelay, { type: 'signal' }> | Extract<DeviceToRelay, { type: 'signal' }>;

/**
 * Relays one signal between a device and a host of the same account. The relay checks who may
 * talk to whom and how often, never the payload (it is signed end to end and opaque here).
 * The first message on a request_id starts a 10 s timeout on this replica; the first message
 * back from the addressee on that id answers it; anything else on the id is trickle.
 */
export async function routeSignal(ctx: RelayContext, hub: SocketHub, sender: Sender, message: SignalIn): Promise<void> {
  const fail = (error: HangarError) => {
    const out = { type: 'signal.error' as const, request_id: message.request_id, error: error.toJSON() };
    if (sender.kind === 'host') sender.connection.send(out);
    else sender.connection.send(out);
  };
  /** Answers the request with a timeout unless the addressee answers first; counted as `direction`. */
  const track = (from: Peer, to: Peer, direction: 'device_to_host' | 'host_to_device') => {
    if (!hub.track(from, to, message.request_id, () => fail(timeout()))) throw tooMany();
    ctx.metrics.signals.inc({ direction });
  };
  /** What either side gets: the payload as signed by the sender, opaque here. */
  const signal = {
    type: 'signal' as const,
    request_id: message.request_id,
    payload: message.payload,
    signature: message.signature,
  };
  try {
    ctx.limits.take('signal', sender.connection.accountId, 'signaling messages for this account');
    if (sender.kind === 'device' && 'to_host' in message) {
      requireTrusted(
        { status: sender.connection.deviceStatus, name: sender.connection.deviceName },
        'signaling a host',
      );
      const host = await accountRow(ctx.db, 'hosts', message.to_host, sender.connection.accountId);
      if (host === undefined) throw new HangarError('E_NOT_FOUND', `no host ${message.to_host} in this account`);
      if (host.online !== 1)
        throw new HangarError('E_HOST_OFFLINE', 'the host is offline (its agent is not connected to the relay)');
      const { deviceId, deviceKey } = sender.connection;
      track(`device:${deviceId}`, `host:${host.id}`, 'device_to_host');
      const out: RelayToAgent = { ...signal, from_device: { device_id: deviceId, public_key: deviceKey } };
      await hub.sendToHost(host.id, out);
      return;
    }
    if (sender.kind === 'host' && 'to_device' in message) {
      const device = await accountRow(ctx.db, 'devices', message.to_device, sender.connection.accountId);
      if (device === undefined) throw new HangarError('E_NOT_FOUND', `no device ${message.to_device} in this account`);
      if (device.status === 'revoked') throw new HangarError('E_AUTH_DEVICE_REVOKED', 'that device was revoked');
      // A pending device learns nothing of the account's hosts, their keys included.
      if (!isTrusted(device)) throw new HangarError('E_FORBIDDEN', 'that device is not approved on the account yet');
      const { hostId, hostKey } = sender.connection;
      track(`host:${hostId}`, `device:${device.id}`, 'host_to_device');
      const out: RelayToDevice = { ...signal, from_host: { host_id: hostId, public_key: hostKey } };
      await hub.sendToDevice(device.id, out);
      return;
    }
    throw new HangarError('E_PROTOCOL', 'signal: a device addresses to_host, a host addresses to_device');
  } catch (error) {
    const hangarError = toHangarError(error);
    if (hangarError.code === 'E_INTERNAL') ctx.logger.error({ err: error }, 'signal failed');
    ctx.metrics.errors.inc({ code: hangarError.code });
    fail(hangarError);
  }
}

function timeout(): HangarError {
  return new HangarError('E_TIMEOUT', 'no answer from the other side within 10 s; is it up to date and online?');
}

function tooMany(): HangarError {
  return new HangarError(
    'E_RATE_LIMITED',
    'too many signaling requests waiting for an answer; wait for some to finish',
    {
      retry_after_ms: 1000,
    },
  );
}
