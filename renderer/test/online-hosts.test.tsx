// @vitest-environment jsdom
import { cleanup, renderHook } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { HostView } from '../src/api/index.js';
import { useOnlineHosts } from '../src/views/use-online-hosts.js';
import { hostView } from './host-views.js';

afterEach(cleanup);

describe('the online hosts (what the Tasks and Previews views list again on)', () => {
  it('is the same array while the set is the same, and a new one when a host comes or goes', () => {
    const { result, rerender } = renderHook(({ hosts }: { hosts: HostView[] }) => useOnlineHosts(hosts), {
      initialProps: { hosts: [hostView('mini'), hostView('box', { status: 'offline' })] },
    });
    const first = result.current;
    expect(first).toEqual(['mini']);
    // New views of the same hosts (their metrics changed every few seconds): the same array.
    rerender({ hosts: [hostView('mini', { error: null }), hostView('box', { status: 'offline' })] });
    expect(result.current).toBe(first);
    rerender({ hosts: [hostView('mini'), hostView('box')] });
    expect(result.current).toEqual(['mini', 'box']);
    rerender({ hosts: [hostView('box', { status: 'offline' }), hostView('mini', { status: 'offline' })] });
    expect(result.current).toEqual([]);
  });
});
