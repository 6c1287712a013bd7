import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_NODE_FLAGS } from '@hangar/shared';
import { describe, expect, it } from 'vitest';

describe('hangar-agent executable', () => {
  it('runs with the same Node flags whether started by its shebang or by the app', () => {
    const shebang = readFileSync(join(import.meta.dirname, '..', 'bin', 'hangar-agent.js'), 'utf8').split('\n')[0]!;
    expect(shebang).toBe(`#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(' ')}`);
  });
});
