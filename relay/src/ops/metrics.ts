import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics on /metrics; one registry per relay (tests run several in one process). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'hangar_relay_' });
  const counter = <Label extends string>(name: string, help: string, labelNames: readonly Label[]) =>
    new Counter<Label>({ name, help, labelNames, registers: [registry] });
  const gauge = (name: string, help: string) => new Gauge({ name, help, registers: [registry] });
  return {
    registry,
    logins: counter('hangar_relay_logins_total', 'Sign-ins and sign-ups by method and outcome', ['method', 'outcome']),
    enrollments: counter('hangar_relay_enrollments_total', 'Host enrollments by outcome', ['outcome']),
    agents: gauge('hangar_relay_connected_agents', 'Agent sockets authenticated on this replica'),
    devices: gauge('hangar_relay_connected_devices', 'Device sockets authenticated on this replica'),
    signals: counter('hangar_relay_signaling_messages_total', 'Signaling messages relayed, by direction', [
      'direction',
    ]),
    splices: counter(
      'hangar_relay_splices_total',
      'Relayed links (splices) asked for, by outcome: opened, or the error code that refused them',
      ['outcome'],
    ),
    splicesOpen: gauge('hangar_relay_splices_open', 'Relayed links (splices) open on this replica'),
    splicedBytes: counter(
      'hangar_relay_spliced_bytes_total',
      'Bytes copied through splices (end-to-end ciphertext), by direction',
      ['direction'],
    ),
    usageRecords: counter(
      'hangar_relay_usage_records_total',
      'Usage records (build minutes) reported by hosts, by outcome (stored, duplicate, refused)',
      ['outcome'],
    ),
    meterEvents: counter('hangar_relay_meter_events_total', 'Stripe meter events by outcome (sent, retry, failed)', [
      'outcome',
    ]),
    errors: counter('hangar_relay_errors_total', 'Errors answered, by code', ['code']),
  };
}
export type RelayMetrics = ReturnType<typeof createMetrics>;
