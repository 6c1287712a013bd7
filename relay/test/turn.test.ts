import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { turnCredentials } from '../src/turn.js';

describe('TURN REST credentials', () => {
  it('username is expiry:id, credential the base64 HMAC-SHA1 of it under the shared secret', () => {
    const now = Date.UTC(2026, 0, 1);
    const ice = turnCredentials(
      { urls: ['turn:turn.example:3478'], secret: 'a-secret-of-some-length' },
      'dev_1',
      now,
      3_600_000,
    );
    expect(ice.username).toBe(`${now / 1000 + 3600}:dev_1`);
    expect(ice.expires_at).toBe(now + 3_600_000);
    expect(ice.credential).toBe(createHmac('sha1', 'a-secret-of-some-length').update(ice.username).digest('base64'));
    expect(ice.urls).toEqual(['turn:turn.example:3478']);
  });
});
