import { describe, expect, it } from 'vitest';
import { parseHttpDate } from '../../src/cache/http-date.js';

describe('HTTP-date parsing', () => {
  it('reads IMF-fixdate and the two obsolete formats as the same instant', () => {
    const at = Date.UTC(1994, 10, 6, 8, 49, 37);
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(at);
    expect(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT')).toBe(at);
    expect(parseHttpDate('Sun Nov  6 08:49:37 1994')).toBe(at);
  });

  it('refuses what is not an HTTP-date, where Date.parse would guess', () => {
    expect(Number.isNaN(Date.parse('0'))).toBe(false); // why Date.parse is not used
    for (const value of [
      '0',
      '-1',
      '',
      'tomorrow',
      'Sun, 31 Feb 2026 00:00:00 GMT',
      '2026-01-01T00:00:00Z',
    ]) {
      expect([value, parseHttpDate(value)]).toEqual([value, undefined]);
    }
    expect(parseHttpDate(['Sun, 06 Nov 1994 08:49:37 GMT', 'Mon, 07 Nov 1994 08:49:37 GMT'])).toBeUndefined();
    expect(parseHttpDate(undefined)).toBeUndefined();
  });

  it('reads a two-digit year more than 50 years ahead as the last century', () => {
    const year = new Date().getUTCFullYear();
    const ahead = (year + 60) % 100;
    const parsed = parseHttpDate(`Monday, 01-Jan-${String(ahead).padStart(2, '0')} 00:00:00 GMT`)!;
    expect(new Date(parsed).getUTCFullYear()).toBe(year + 60 - 100);
  });
});
