// Inbound authentication: who is calling, verified — an API key (stored hashed), a JWT (JWKS), or a trusted header.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { ApiKeyConfig, AuthConfig } from '../config/auth-schema.js';
import { GatewayError } from '../errors.js';

/** What a caller may reach; a list that is undefined allows everything of its kind. */
export interface Allowances {
  readonly routes?: readonly string[];
  readonly models?: readonly string[];
  readonly tools?: readonly string[];
  readonly groups?: readonly string[];
}

/** A verified caller. `id` is the principal every cache scope, session limit and transcript owner uses. */
export interface Caller {
  readonly id: string;
  readonly via: 'api-key' | 'jwt' | 'header';
  /** The API key's name (for logs and metrics; never the key). */
  readonly key?: string;
  readonly allow?: Allowances;
  readonly limits?: ApiKeyConfig['limits'];
}

export interface Authenticator {
  /** True when a request without credentials is refused (apiKeys or jwt configured). */
  readonly required: boolean;
  /** True when JWT (OAuth 2.1 access tokens) is configured: the gateway is an OAuth resource server. */
  readonly oauth: boolean;
  /**
   * The caller a request's credentials prove, or undefined when it carries none. Throws 401
   * `GW_UNAUTHORIZED` (with a `WWW-Authenticate` challenge) for credentials that do not verify.
   */
  authenticate(headers: IncomingHttpHeaders): Promise<Caller | undefined>;
  /** The 401 for a request that needs credentials and has none. */
  missing(resourceMetadata?: string): GatewayError;
  /** Loads the JWKS once (never fatal) and starts its background refresh. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** The anonymous "authenticator" of a gateway without `auth`: nobody is identified. */
const NOBODY: Authenticator = {
  required: false,
  oauth: false,
  authenticate: async () => undefined,
  missing: () => new GatewayError('GW_UNAUTHORIZED', 'authentication is required'),
  start: async () => {},
  close: async () => {},
};

/** Whether the caller may reach `name` of `kind`. Tool allowances also accept `server__*`. */
export function allowed(caller: Caller | undefined, kind: keyof Allowances, name: string): boolean {
  const list = caller?.allow?.[kind];
  if (list === undefined) return true;
  if (list.includes(name)) return true;
  return kind === 'tools' && list.some((entry) => entry.endsWith('*') && name.startsWith(entry.slice(0, -1)));
}

/** Throws 403 `GW_FORBIDDEN` unless the caller may reach `name` of `kind`. */
export function authorize(caller: Caller | undefined, kind: keyof Allowances, name: string): void {
  if (!allowed(caller, kind, name)) {
    const what = kind.slice(0, -1);
    throw new GatewayError('GW_FORBIDDEN', `this caller may not use ${what} "${name}"`, {
      data: { [what]: name },
    });
  }
}

/**
 * Builds the authenticator for `config.auth` (undefined: everyone is anonymous). API keys are looked up by
 * their SHA-256 (the clear text is never kept, and a hash comparison leaks nothing about other keys);
 * a bearer token that is no known key and looks like a JWT is verified against the JWKS: signature,
 * `iss`, `aud`, `exp` / `nbf` within the clock skew, one of the allowed algorithms. With `trust: header`,
 * `principalHeader`'s value is believed as it is.
 */
export function createAuthenticator(
  config: AuthConfig | undefined,
  principalHeader: string,
  logger?: Logger,
): Authenticator {
  if (config === undefined) return NOBODY;
  if (config.trust === 'header') {
    return {
      ...NOBODY,
      async authenticate(headers) {
        const value = headerValue(headers[principalHeader]);
        return value === undefined || value === '' ? undefined : { id: value, via: 'header' };
      },
    };
  }
  const keys = new Map<string, ApiKeyConfig>();
  for (const key of [...(config.apiKeys?.keys ?? []), ...(config.apiKeys?.file ?? [])])
    keys.set(key.sha256, key);
  const keyHeader = config.apiKeys?.header ?? 'authorization';
  const jwt = config.jwt;
  const jwks =
    jwt === undefined
      ? undefined
      : createRemoteJWKSet(new URL(jwt.jwksUrl), {
          cacheMaxAge: jwt.refreshInterval,
          cooldownDuration: jwt.refetchCooldown,
          timeoutDuration: 5_000,
        });
  let refresh: NodeJS.Timeout | undefined;
  /**
   * Tokens that verified, by their SHA-256, with the instant they stop being trusted: their `exp`, and no
   * later than one key-set refresh from now (a key removed from the set is then refused, as without the
   * cache). A token seen again costs a hash and a lookup instead of a signature check.
   */
  const verified = new LRUCache<string, { caller: Caller; until: number }>({ max: MAX_VERIFIED_TOKENS });

  const challenge = (error?: string, description?: string, resourceMetadata?: string): string => {
    const parts = ['Bearer realm="slipstream"'];
    if (error !== undefined) parts.push(`error="${error}"`);
    if (description !== undefined) parts.push(`error_description="${description.replace(/["\\]/g, '')}"`);
    if (resourceMetadata !== undefined) parts.push(`resource_metadata="${resourceMetadata}"`);
    return parts.join(', ');
  };
  // RFC 6750 §3.1: invalid_token for a credential that did not verify.
  const invalid = (description: string) =>
    new GatewayError('GW_UNAUTHORIZED', `the credential was refused: ${description}`, {
      headers: { 'www-authenticate': challenge('invalid_token', description) },
    });

  const verifyJwt = async (token: string): Promise<Caller> => {
    const digest = createHash('sha256').update(token).digest('hex');
    const seen = verified.get(digest);
    if (seen !== undefined && Date.now() < seen.until) return seen.caller;
    const caller = await verifySignature(token);
    const expires = typeof caller.exp === 'number' ? caller.exp * 1000 : Infinity;
    verified.set(digest, {
      caller: caller.caller,
      until: Math.min(expires, Date.now() + jwt!.refreshInterval),
    });
    return caller.caller;
  };

  const verifySignature = async (token: string): Promise<{ caller: Caller; exp: unknown }> => {
    try {
      const { payload } = await jwtVerify(token, jwks!, {
        issuer: jwt!.issuer,
        audience: jwt!.audience,
        clockTolerance: Math.round(jwt!.clockSkew / 1000),
        algorithms: jwt!.algorithms,
      });
      const id = payload[jwt!.principalClaim];
      if (typeof id !== 'string' || id === '')
        throw invalid(`the token has no "${jwt!.principalClaim}" claim`);
      return { caller: { id: `jwt:${id}`, via: 'jwt' }, exp: payload.exp };
    } catch (error) {
      if (error instanceof GatewayError) throw error;
      if (error instanceof joseErrors.JWTExpired) throw invalid('the token has expired');
      if (error instanceof joseErrors.JWTClaimValidationFailed)
        throw invalid(`claim "${error.claim}" is not accepted`);
      if (error instanceof joseErrors.JWKSNoMatchingKey) throw invalid('no signing key matches the token');
      if (
        error instanceof joseErrors.JWKSTimeout ||
        (error as { code?: string }).code === 'ERR_JWKS_INVALID'
      ) {
        // The key set could not be read: our problem, not the caller's.
        throw new GatewayError(
          'GW_UPSTREAM_UNAVAILABLE',
          'the JWKS could not be fetched to verify the token',
          {
            cause: error,
          },
        );
      }
      throw invalid('the token does not verify');
    }
  };

  return {
    required: true,
    oauth: jwks !== undefined,
    async authenticate(headers) {
      const raw = headerValue(headers[keyHeader]);
      const bearer = bearerOf(headerValue(headers.authorization));
      const presented = keyHeader === 'authorization' ? bearer : raw;
      if (presented !== undefined && presented !== '') {
        const key = keys.get(createHash('sha256').update(presented).digest('hex'));
        if (key !== undefined) {
          return {
            id: key.principal,
            via: 'api-key',
            key: key.name,
            ...(key.allow === undefined ? {} : { allow: key.allow }),
            ...(key.limits === undefined ? {} : { limits: key.limits }),
          };
        }
      }
      if (jwks !== undefined && bearer !== undefined && bearer.split('.').length === 3)
        return verifyJwt(bearer);
      if (presented !== undefined) throw invalid('unknown API key');
      if (jwks !== undefined && bearer !== undefined)
        throw invalid('the bearer token is neither a key nor a JWT');
      return undefined;
    },
    missing: (resourceMetadata) =>
      new GatewayError('GW_UNAUTHORIZED', 'authentication is required: send a bearer token or an API key', {
        headers: { 'www-authenticate': challenge(undefined, undefined, resourceMetadata) },
      }),
    async start() {
      if (jwks === undefined) return;
      await jwks
        .reload()
        .catch((error: unknown) =>
          logger?.warn(
            { err: error, jwksUrl: jwt!.jwksUrl },
            'JWKS not loaded at start-up; retried on the first token',
          ),
        );
      refresh = setInterval(() => {
        jwks
          .reload()
          .then(() => verified.clear())
          .catch((error: unknown) =>
            logger?.warn(
              { err: error, jwksUrl: jwt!.jwksUrl },
              'JWKS refresh failed; keeping the last key set',
            ),
          );
      }, jwt!.refreshInterval);
      refresh.unref();
    },
    async close() {
      clearInterval(refresh);
    },
  };
}

/** Verified tokens remembered at once (least recently used forgotten first). */
const MAX_VERIFIED_TOKENS = 10_000;

function bearerOf(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return match === null ? undefined : match[1];
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}
