// Entity tags of representations the gateway re-codes (RFC 9110 §8.8.3): distinct from the upstream's, and mapped back on conditionals.
import type { Headers } from '../pipeline/types.js';
import type { Coding } from './codings.js';

/** What a re-coded representation is: a content coding, or identity (an upstream's coding removed). */
export type Produced = Coding | 'identity';

const SUFFIX = /-(?:zstd|br|gzip|deflate|identity)"$/;

/**
 * The entity tag of a representation the gateway produced from one tagged `etag`: the opaque tag with
 * `-<coding>` appended, weak stays weak (`"v1"` → `"v1-gzip"`, `W/"v1"` → `W/"v1-gzip"`). RFC 9110
 * §8.8.3: a strong tag names exactly one representation, and a content-coded one is another
 * representation, so it must not carry the upstream's tag. Undefined for a malformed tag (it is dropped:
 * no validator is better than a wrong one).
 */
export function codedEtag(etag: string, produced: Produced): string | undefined {
  const tag = etag.trim();
  const weak = tag.startsWith('W/');
  const opaque = weak ? tag.slice(2) : tag;
  if (opaque.length < 2 || !opaque.startsWith('"') || !opaque.endsWith('"')) return undefined;
  return `${weak ? 'W/' : ''}${opaque.slice(0, -1)}-${produced}"`;
}

/**
 * An `If-None-Match` / `If-Match` list with, beside every tag the gateway could have produced
 * (`"v1-gzip"`), the upstream's own tag it came from (`"v1"`), so the upstream (or the cache, holding the
 * upstream's representation) can match it. The original tags stay: an upstream whose own tags end that
 * way (Apache's `-gzip`) still matches them. Returns `value` itself when there is nothing to add.
 */
export function withUpstreamTags(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(', ') : value;
  if (!text.includes('-')) return text;
  const added: string[] = [];
  for (const member of text.split(',')) {
    const tag = member.trim();
    if (SUFFIX.test(tag)) added.push(tag.replace(SUFFIX, '"'));
  }
  return added.length === 0 ? text : `${text}, ${added.join(', ')}`;
}

/**
 * The tag a 304 should carry for the client (RFC 9110 §15.4.5: the one of the representation it holds):
 * the client's own tag whose upstream tag the 304 names, else the 304's.
 */
export function clientTag(notModifiedEtag: string, request: Headers): string {
  const ifNoneMatch = request['if-none-match'];
  if (ifNoneMatch === undefined) return notModifiedEtag;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, '');
  const target = opaque(notModifiedEtag);
  const text = Array.isArray(ifNoneMatch) ? ifNoneMatch.join(',') : ifNoneMatch;
  for (const member of text.split(',')) {
    const tag = member.trim();
    if (SUFFIX.test(tag) && opaque(tag.replace(SUFFIX, '"')) === target) return tag;
  }
  return notModifiedEtag;
}
