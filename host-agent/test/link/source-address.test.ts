import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sourceKey } from '../../src/link/source-address.js';

/** Every way of writing one IPv6 address: full, without leading zeros, with the longest zero run as `::`. */
function spellings(groups: number[]): string[] {
  const full = groups.map((g) => g.toString(16).padStart(4, '0')).join(':');
  const short = groups.map((g) => g.toString(16)).join(':');
  let best = { at: -1, length: 0 };
  for (let at = 0; at < 8; at++) {
    let length = 0;
    while (at + length < 8 && groups[at + length] === 0) length++;
    if (length > best.length) best = { at, length };
  }
  const out = [full, short, full.toUpperCase()];
  if (best.length >= 2) {
    const head = groups.slice(0, best.at).map((g) => g.toString(16));
    const tail = groups.slice(best.at + best.length).map((g) => g.toString(16));
    out.push(`${head.join(':')}::${tail.join(':')}`);
  }
  return out;
}

describe('the source a connection is counted under', () => {
  it('is the IPv4 address, also when a dual-stack socket reports it IPv4-mapped', () => {
    expect(sourceKey('192.0.2.7')).toBe('192.0.2.7');
    expect(sourceKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(sourceKey('::FFFF:192.0.2.7')).toBe('192.0.2.7');
  });

  it('is the /64 of an IPv6 address, however it is written', () => {
    expect(sourceKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    const group = fc.integer({ min: 0, max: 0xffff });
    const zeroish = fc.oneof(group, fc.constant(0));
    fc.assert(
      fc.property(fc.array(zeroish, { minLength: 8, maxLength: 8 }), group, (groups, other) => {
        const keys = new Set(spellings(groups).map(sourceKey));
        expect(keys.size).toBe(1);
        // Another interface id in the same /64 is the same source.
        expect(sourceKey(spellings([...groups.slice(0, 7), other])[0]!)).toBe([...keys][0]);
      }),
    );
  });

  it('keeps apart addresses in different /64s', () => {
    expect(sourceKey('2001:db8:1:2::1')).not.toBe(sourceKey('2001:db8:1:3::1'));
    expect(sourceKey('192.0.2.7')).not.toBe(sourceKey('192.0.2.8'));
  });
});
