import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics on /metrics; one registry per relay (tests run several in one process). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'hangar_relay_' });
  return {
    registry,
    logins: new Counter({
      name: 'hangar_relay_logins_total',
      help: 'Sign-ins and sign-ups by method and outcome',
      labelNames: ['method', 'outcome'] as const,
      registers: [registry],
    }),
    enrollments: new Counter({
      name: 'hangar_relay_enrollments_total',
      help: 'Host enrollments by outcome',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    agents: new Gauge({
      name: 'hangar_relay_connected_agents',
      help: 'Agent sockets authenticated on this replica',
      registers: [registry],
    }),
    devices: new Gauge({
      name: 'hangar_relay_connected_devices',
      help: 'Device sockets authenticated on this replica',
      registers: [registry],
    }),
    signals: new Counter({
      name: 'hangar_relay_signaling_messages_total',
      help: 'Signaling messages relayed, by direction',
      labelNames: ['direction'] as const,
      registers: [registry],
    }),
    splices: new Counter({
      name: 'hangar_relay_splices_total',
      help: 'Relayed links (splices) asked for, by outcome: opened, or the error code that refused them',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    splicesOpen: new Gauge({
      name: 'hangar_relay_splices_open',
      help: 'Relayed links (splices) open on this replica',
      registers: [registry],
    }),
    splicedBytes: new Counter({
      name: 'hangar_relay_spliced_bytes_total',
      help: 'Bytes copied through splices (end-to-end ciphertext), by direction',
      labelNames: ['direction'] as const,
      registers: [registry],
    }),
    usageRecords: new Counter({
      name: 'hangar_relay_usage_records_total',
      help: 'Usage records (build minutes) reported by hosts, by outcome (stored, duplicate, refused)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    meterEvents: new Counter({
      name: 'hangar_relay_meter_events_total',
      help: 'Stripe meter events by outcome (sent, retry, failed)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    errors: new Counter({
      name: 'hangar_relay_errors_total',
      help: 'Errors answered, by code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
  };
}
export type RelayMetrics = ReturnType<typeof createMetrics>;
