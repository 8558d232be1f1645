import { describe, expect, it } from 'vitest';
import {
  clientNotModified,
  hasValidator,
  notModifiedHeaders,
  notModifiedMatches,
  originOnly,
  revalidationHeaders,
  updatedHeaders,
  withoutConditionals,
} from '../../src/cache/conditional.js';

const LAST_MODIFIED = 'Mon, 01 Jan 2024 00:00:00 GMT';

describe('requests the cache leaves to the origin', () => {
  it('are range requests and origin-only preconditions', () => {
    for (const name of ['range', 'if-match', 'if-unmodified-since', 'if-range']) {
      expect(originOnly({ [name]: 'x' })).toBe(true);
    }
    expect(originOnly({ 'if-none-match': '"a"', 'if-modified-since': LAST_MODIFIED })).toBe(false);
  });
});

describe('revalidating upstream (RFC 9111 §4.3.1)', () => {
  it('asks with the stored ETag and Last-Modified, in place of the client conditions', () => {
    const client = {
      accept: 'x',
      'if-none-match': '"mine"',
      'if-modified-since': 'Tue, 02 Jan 2024 00:00:00 GMT',
    };
    const stripped = withoutConditionals(client);
    expect(stripped).toEqual({ accept: 'x' });
    expect(revalidationHeaders(stripped, { etag: '"v1"', 'last-modified': LAST_MODIFIED })).toEqual({
      accept: 'x',
      'if-none-match': '"v1"',
      'if-modified-since': LAST_MODIFIED,
    });
    const plain = { accept: 'x' };
    expect(withoutConditionals(plain)).toBe(plain); // no copy when there is nothing to strip
    expect([
      hasValidator({ etag: '"a"' }),
      hasValidator({ 'last-modified': LAST_MODIFIED }),
      hasValidator({}),
    ]).toEqual([true, true, false]);
  });

  it('applies a 304 only to the stored response it names (§4.3.4)', () => {
    expect(notModifiedMatches({ etag: '"v1"' }, { etag: 'W/"v1"' })).toBe(true);
    expect(notModifiedMatches({ etag: '"v1"' }, { etag: '"v2"' })).toBe(false);
    expect(notModifiedMatches({}, { etag: '"v1"' })).toBe(false);
    expect(notModifiedMatches({ 'last-modified': LAST_MODIFIED }, { 'last-modified': LAST_MODIFIED })).toBe(
      true,
    );
    expect(notModifiedMatches({ etag: '"v1"' }, {})).toBe(true);
  });

  it("updates stored headers from the 304's, except framing and cookies (§3.2)", () => {
    const stored = {
      'content-type': 'application/json',
      'content-length': '10',
      'x-version': '1',
      etag: '"v1"',
    };
    const merged = updatedHeaders(stored, {
      'x-version': '2',
      'content-length': '0',
      'set-cookie': 'sid=1',
      'cache-control': 'max-age=60',
    });
    expect(merged).toEqual({
      'content-type': 'application/json',
      'content-length': '10',
      'x-version': '2',
      etag: '"v1"',
      'cache-control': 'max-age=60',
    });
  });
});

describe("answering a client's conditional request (§4.3.2, RFC 9110 §13.1)", () => {
  const response = { etag: 'W/"abc"', 'last-modified': LAST_MODIFIED, date: 'Wed, 03 Jan 2024 00:00:00 GMT' };

  it('matches If-None-Match weakly, against any tag of its list, and * against anything', () => {
    expect(clientNotModified({ 'if-none-match': '"abc"' }, response, 0)).toBe(true);
    expect(clientNotModified({ 'if-none-match': '"x", W/"abc"' }, response, 0)).toBe(true);
    expect(clientNotModified({ 'if-none-match': '"x"' }, response, 0)).toBe(false);
    expect(clientNotModified({ 'if-none-match': '*' }, {}, 0)).toBe(true);
    expect(clientNotModified({ 'if-none-match': '"abc"' }, {}, 0)).toBe(false);
  });

  it('uses If-Modified-Since only without If-None-Match, against Last-Modified, else Date, else arrival', () => {
    const after = 'Tue, 02 Jan 2024 00:00:00 GMT';
    expect(clientNotModified({ 'if-modified-since': after }, response, 0)).toBe(true);
    expect(clientNotModified({ 'if-modified-since': 'Sun, 31 Dec 2023 00:00:00 GMT' }, response, 0)).toBe(
      false,
    );
    expect(clientNotModified({ 'if-none-match': '"x"', 'if-modified-since': after }, response, 0)).toBe(
      false,
    );
    expect(clientNotModified({ 'if-modified-since': after }, { date: response.date }, 0)).toBe(false);
    expect(clientNotModified({ 'if-modified-since': after }, {}, Date.UTC(2024, 0, 1))).toBe(true);
    expect(clientNotModified({ 'if-modified-since': 'yesterday' }, response, 0)).toBe(false);
  });

  it('sends with a 304 only the fields that guide caches (RFC 9110 §15.4.5)', () => {
    expect(
      notModifiedHeaders({
        ...response,
        'content-type': 'a/b',
        'content-length': '3',
        vary: 'Accept',
        'x-other': '1',
      }),
    ).toEqual({ ...response, vary: 'Accept' });
  });
});
