import { describe, expect, it } from 'vitest';
import { shareableWith, storableFor, unidentifiedCaller } from '../../src/cache/audience.js';
import { parseCacheControl } from '../../src/cache/cache-control.js';
import { makeCall, makeReply } from '../helpers/calls.js';

const cc = parseCacheControl;

describe('callers a principal-scoped key cannot tell apart', () => {
  it('are anonymous calls carrying a credential the key leaves out', () => {
    const credentials = ['authorization', 'cookie'];
    expect(unidentifiedCaller(makeCall({ headers: { cookie: 'sid=a' } }), credentials)).toBe(true);
    expect(unidentifiedCaller(makeCall({ headers: { authorization: 'Bearer a' } }), credentials)).toBe(true);
    expect(unidentifiedCaller(makeCall({ headers: { cookie: 'sid=a' }, principal: 'p' }), credentials)).toBe(
      false,
    );
    expect(unidentifiedCaller(makeCall({ headers: { cookie: 'sid=a' } }), ['authorization'])).toBe(false);
    expect(unidentifiedCaller(makeCall(), credentials)).toBe(false);
  });
});

describe('what may be stored for whom', () => {
  it('stores a private reply only under one caller (principal scope with a principal)', () => {
    expect(storableFor(makeCall({ principal: 'p' }), cc('private'), false)).toBe(true);
    expect(storableFor(makeCall(), cc('private'), false)).toBe(false);
    expect(storableFor(makeCall({ principal: 'p' }), cc('private'), true)).toBe(false);
  });

  it('on shared routes stores a reply to a request with Authorization only when public, s-maxage or must-revalidate (§3.5)', () => {
    const authorized = makeCall({ headers: { authorization: 'Bearer a' } });
    expect(storableFor(authorized, cc('max-age=60'), true)).toBe(false);
    for (const value of ['public', 's-maxage=60', 'max-age=60, must-revalidate']) {
      expect([value, storableFor(authorized, cc(value), true)]).toEqual([value, true]);
    }
    expect(storableFor(authorized, cc('max-age=60'), false)).toBe(true); // its key holds the principal
  });
});

describe('which coalesced waiters may share a reply', () => {
  const leader = makeCall({ headers: { 'accept-language': 'de', authorization: 'Bearer a' } });
  const share = (headers: Record<string, string>, waiter = leader, shared = true) =>
    shareableWith({ ...makeReply(200, headers) }, cc(headers['cache-control']), waiter, leader, shared);

  it('never shares a cookie, a different variant, or on shared routes another credential’s reply', () => {
    expect(share({ 'set-cookie': 'a=1' })).toBe(false);
    expect(
      share(
        { vary: 'Accept-Language' },
        makeCall({ headers: { 'accept-language': 'ja', authorization: 'Bearer a' } }),
      ),
    ).toBe(false);
    expect(share({ vary: 'Accept-Language' })).toBe(true);
    expect(share({}, makeCall({ headers: { authorization: 'Bearer b' } }))).toBe(false);
    expect(share({ 'cache-control': 'public' }, makeCall({ headers: { authorization: 'Bearer b' } }))).toBe(
      true,
    );
  });

  it('shares private and no-store replies only among waiters who are one caller', () => {
    const principal = makeCall({ principal: 'p' });
    expect(share({ 'cache-control': 'private' }, principal, false)).toBe(true);
    expect(share({ 'cache-control': 'no-store' }, makeCall(), false)).toBe(false);
    expect(share({ 'cache-control': 'private' }, principal, true)).toBe(false);
  });
});
