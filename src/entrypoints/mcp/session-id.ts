// Signed 2025-11-25 `Mcp-Session-Id`s that name the process owning the session (`s1.<owner>.<random>.<mac>`).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const VERSION = 's1';
/** Random bits per id (spec 2025-11-25 basic/transports: the id SHOULD be globally unique and secure). */
const RANDOM_BYTES = 16;
/** HMAC-SHA256 truncated to 128 bits: forging one still takes 2^128 guesses. */
const MAC_BYTES = 16;

export interface SessionIdsOptions {
  /** HMAC key shared by every replica (`mcp.sessionSecret`), or by one machine's workers. */
  secret: string;
  /** This replica's address as the others reach it (`server.advertise`); undefined: one machine only. */
  self: string | undefined;
  /** Every replica's address, `self` included (`server.replicas`): the only other owners an id may name. */
  replicas: readonly string[];
  /** Under `serve --workers N`: this worker (1..N) and N. The owner then names the worker too. */
  worker?: { index: number; count: number };
}

/** Where a verified session id says its session lives: here, in a sibling worker, or on another replica. */
export type SessionOwner = { local: true } | { worker: number } | { replica: string };

export interface SessionIds {
  /** A fresh id owned by this process (the SDK transport's `sessionIdGenerator`). */
  readonly mint: () => string;
  /**
   * The owner of `id` once its MAC checks out (in constant time) and it names a configured replica or a
   * worker of this machine; undefined for anything else (a forged, tampered or foreign id, an unknown
   * version), which is a 404 without forwarding: a client cannot make the gateway call an address of its
   * choosing.
   */
  ownerOf(id: string): SessionOwner | undefined;
}

/**
 * Session ids for replicas behind a load balancer and for the workers of one machine (docs/deploy.md,
 * "legacy `/mcp` sessions through any replica"). `<owner>` is `<address>` or, under `--workers`,
 * `<address>/<worker>` (the address empty without `server.advertise`), in base64url; `<random>` 128 random
 * bits; `<mac>` the truncated HMAC-SHA256 of `s1.<owner>.<random>`. Only base64url and dots: the visible
 * ASCII that MCP 2025-11-25 basic/transports requires of `Mcp-Session-Id`.
 */
export function sessionIds(options: SessionIdsOptions): SessionIds {
  const key = Buffer.from(options.secret, 'utf8');
  const here = options.self ?? '';
  const known = new Set(options.replicas);
  const { worker } = options;
  const ownSegment = Buffer.from(worker === undefined ? here : `${here}/${worker.index}`).toString(
    'base64url',
  );
  const mac = (signed: string) => createHmac('sha256', key).update(signed).digest().subarray(0, MAC_BYTES);

  /** A verified owner, as this process reaches it. */
  const route = (owner: string): SessionOwner | undefined => {
    const slash = owner.lastIndexOf('/');
    const address = slash === -1 ? owner : owner.slice(0, slash);
    if (address !== here) return known.has(address) ? { replica: address } : undefined;
    const index = slash === -1 ? NaN : Number(owner.slice(slash + 1));
    if (worker === undefined || !Number.isInteger(index) || index < 1 || index > worker.count)
      return undefined;
    return index === worker.index ? { local: true } : { worker: index };
  };

  return {
    mint() {
      const signed = `${VERSION}.${ownSegment}.${randomBytes(RANDOM_BYTES).toString('base64url')}`;
      return `${signed}.${mac(signed).toString('base64url')}`;
    },
    ownerOf(id) {
      const [version, ownerSegment, random, macSegment, ...more] = id.split('.');
      if (version !== VERSION || macSegment === undefined || more.length > 0) return undefined;
      const given = Buffer.from(macSegment, 'base64url');
      // Only the canonical spelling: one session, one id (base64url decoding skips stray characters).
      if (given.length !== MAC_BYTES || given.toString('base64url') !== macSegment) return undefined;
      if (!timingSafeEqual(given, mac(`${version}.${ownerSegment}.${random}`))) return undefined;
      if (ownerSegment === ownSegment) return { local: true };
      return route(Buffer.from(ownerSegment!, 'base64url').toString('utf8'));
    },
  };
}
