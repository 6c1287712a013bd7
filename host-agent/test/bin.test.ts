import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '@hangar/shared';
import { describe, expect, it } from 'vitest';

describe('hangar-agent executable', () => {
  it('runs with the same Node flags and environment whether started by its shebang or by the app', () => {
    const shebang = readFileSync(join(import.meta.dirname, '..', 'bin', 'hangar-agent.js'), 'utf8').split('\n')[0]!;
    const env = Object.entries(AGENT_ENV).map(([name, value]) => `${name}=${value}`);
    expect(shebang).toBe(`#!/usr/bin/env -S ${env.join(' ')} node ${AGENT_NODE_FLAGS.join(' ')}`);
  });
});
