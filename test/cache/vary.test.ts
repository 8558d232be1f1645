import { describe, expect, it } from 'vitest';
import { groupOf } from '../../src/cache/keys.js';
import { normalizeField, sameVariant, variantKey, varyNames } from '../../src/cache/vary.js';

describe('Vary names', () => {
  it('lower-cases, sorts and de-duplicates the names of every line', () => {
    expect(varyNames(['Accept-Language, accept-encoding', 'ACCEPT-LANGUAGE'])).toEqual([
      'accept-encoding',
      'accept-language',
    ]);
    expect(varyNames(undefined)).toBeUndefined();
    expect(varyNames(' , ')).toBeUndefined();
  });

  it('is * when any member of any line is *', () => {
    for (const vary of ['*', '*, Accept', 'Accept, *', 'Accept ,*', ['Accept', '*']]) {
      expect(varyNames(vary)).toBe('*');
    }
  });
});

describe('Vary field normalisation', () => {
  it('drops optional whitespace and case in Accept-Language and Accept-Encoding, keeping order', () => {
    expect(normalizeField('accept-language', ' FR , en;q=0.5')).toBe(
      normalizeField('accept-language', 'fr,EN; q=0.5'),
    );
    expect(normalizeField('accept-language', 'fr, en')).not.toBe(normalizeField('accept-language', 'en, fr'));
    expect(normalizeField('accept-encoding', ['gzip', ' BR'])).toBe('gzip,br');
    expect(normalizeField('accept-encoding', 'gzip,, br,')).toBe('gzip,br');
  });

  it('keeps quoted strings and the case of Accept parameters, and only trims other headers', () => {
    expect(normalizeField('accept', 'text/html; x="A b, C"')).toBe('text/html;x="A b, C"');
    expect(normalizeField('accept', 'Text/HTML')).toBe('Text/HTML');
    expect(normalizeField('x-tenant', '  Acme  Corp ')).toBe('Acme  Corp');
  });

  it('tells an absent header from an empty one', () => {
    expect(normalizeField('accept-language', undefined)).toBeNull();
    expect(normalizeField('accept-language', '')).toBe('');
  });
});

describe('variant keys', () => {
  const names = ['accept-encoding', 'accept-language'];

  it('selects one variant for equivalent requests and another for different ones, in the same key group', () => {
    const a = variantKey('r|GET /x|h', names, { 'accept-language': 'fr', 'accept-encoding': 'gzip' });
    const b = variantKey('r|GET /x|h', names, { 'accept-language': 'FR ', 'accept-encoding': ' GZIP' });
    const c = variantKey('r|GET /x|h', names, { 'accept-language': 'en', 'accept-encoding': 'gzip' });
    const d = variantKey('r|GET /x|h', names, { 'accept-language': 'fr' });
    expect(a).toBe(b);
    expect(new Set([a, c, d]).size).toBe(3);
    expect(a.startsWith('r|GET /x|h.')).toBe(true);
    expect(groupOf(a)).toBe('r|GET /x|');
  });

  it('compares two requests on the varying headers only', () => {
    expect(
      sameVariant(names, { 'accept-language': 'de', other: '1' }, { 'accept-language': 'de ', other: '2' }),
    ).toBe(true);
    expect(sameVariant(names, { 'accept-language': 'de' }, { 'accept-language': 'ja' })).toBe(false);
  });
});
