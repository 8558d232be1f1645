// Accept-Encoding negotiation (RFC 9110 §12.5.3): which content coding, if any, a client takes.
import { codingOf } from './codings.js';
import type { Coding } from './codings.js';

/** A client's Accept-Encoding, parsed: the q-value of each coding it names, of `*`, and of identity. */
export interface Accepted {
  /** q of each known coding the client names (absent: not named). */
  readonly named: ReadonlyMap<Coding, number>;
  /** q of `*` (any coding not named), or undefined when absent. */
  readonly any: number | undefined;
}

const NOTHING: Accepted = { named: new Map(), any: undefined };
/** Parsed headers, by their text: clients send a handful of distinct values. Bounded. */
const parsed = new Map<string, Accepted>();
const MAX_PARSED = 256;
const MAX_PARSED_LENGTH = 256;

/**
 * Parses an Accept-Encoding field. An absent or empty field accepts no coding: RFC 9110 allows any coding
 * for a request without the field, but clients that send none (curl, `undici.request`, most scripts) do not
 * decode, and the gateway only ever compresses on the client's word. `x-gzip` counts as gzip; unknown
 * codings are ignored; a malformed q-value counts as 0.
 */
export function parseAcceptEncoding(value: string | string[] | undefined): Accepted {
  if (value === undefined) return NOTHING;
  const text = Array.isArray(value) ? value.join(',') : value;
  const known = parsed.get(text);
  if (known !== undefined) return known;
  const named = new Map<Coding, number>();
  let any: number | undefined;
  for (const member of text.split(',')) {
    const [token = '', ...params] = member.split(';');
    const name = token.trim().toLowerCase();
    if (name === '') continue;
    let q = 1;
    for (const param of params) {
      const [key, raw] = param.split('=');
      if (key?.trim().toLowerCase() !== 'q') continue;
      const v = raw?.trim() ?? '';
      q = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(v) ? Number(v) : 0;
    }
    if (name === '*') any = q;
    else {
      const coding = codingOf(name);
      if (coding !== undefined) named.set(coding, Math.max(q, named.get(coding) ?? 0));
    }
  }
  const result = { named, any };
  if (text.length <= MAX_PARSED_LENGTH) {
    if (parsed.size >= MAX_PARSED) parsed.clear();
    parsed.set(text, result);
  }
  return result;
}

/** The q-value a client gives `coding` (named, else `*`, else 0). */
export function qualityOf(accepted: Accepted, coding: Coding): number {
  return accepted.named.get(coding) ?? accepted.any ?? 0;
}

/**
 * The coding to send among `offered` (the gateway's order of preference): the one the client rates
 * highest, ties going to the gateway's order; undefined when it accepts none of them (identity then,
 * which a client can always read even when it says `identity;q=0`: the gateway has nothing better).
 */
export function negotiate(accepted: Accepted, offered: readonly Coding[]): Coding | undefined {
  let best: Coding | undefined;
  let bestQ = 0;
  for (const coding of offered) {
    const q = qualityOf(accepted, coding);
    if (q > bestQ) {
      best = coding;
      bestQ = q;
    }
  }
  return best;
}
