import { describe, expect, it } from 'vitest';
import { JobSpec } from '../src/protocol/jobs.js';
import { parseOrThrow } from '../src/validate.js';

describe('a job’s network in its spec', () => {
  it('defaults to default (outbound), and takes outbound, none and host', () => {
    expect(JobSpec.parse({ command: 'true' }).network).toBe('default');
    for (const network of ['outbound', 'none', 'host'] as const) {
      expect(JobSpec.parse({ command: 'true', network }).network).toBe(network);
    }
  });

  it('an unknown network is refused with the names it may be', () => {
    expect(() => parseOrThrow(JobSpec, { command: 'true', network: 'bridge' }, 'job')).toThrow(
      'job: network: unknown network "bridge": expected outbound (the default), none or host',
    );
  });
});
