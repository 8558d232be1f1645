// The `auth:` and `rateLimits:` config keys (zod): who may call the gateway, as whom, and how often.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { duration, httpUrl, name } from './fields.js';

/** A token bucket: `rate` requests (or tokens) per second on average, bursts up to `burst`. */
export const bucketSchema = z.strictObject({
  /** Sustained rate, per second. */
  rate: z.number().positive().max(1e9),
  /** Most taken at once after a quiet spell (the bucket's size). Default: one second of `rate`, at least 1. */
  burst: z.number().int().min(1).max(1e9).optional(),
});

/** What one API key may reach; a list left out allows everything of that kind. */
const allowances = z.strictObject({
  /** Proxy route names. */
  routes: z.array(z.string().min(1)).optional(),
  /** LLM model names as clients send them (aliases or `provider/model`). */
  models: z.array(z.string().min(1)).optional(),
  /** MCP tools by their namespaced name (`server__tool`), or `server__*` for a whole server. */
  tools: z.array(z.string().min(1)).optional(),
  /** Fan-out groups. */
  groups: z.array(z.string().min(1)).optional(),
});

/** One key's own limits, instead of `rateLimits.perPrincipal`; LLM token limits count usage the provider reports. */
const keyLimits = z.strictObject({
  requests: bucketSchema.optional(),
  /** LLM tokens (input + output) per minute. */
  tokensPerMinute: z.number().int().min(1).optional(),
  /** LLM tokens (input + output) per day, refilled continuously; past it, LLM calls get 429. */
  tokensPerDay: z.number().int().min(1).optional(),
});

const HEX_SHA256 = /^[0-9a-f]{64}$/;

/**
 * An API key: its secret as `key` (use `${ENV}`; hashed at load, the clear text is not kept) or already
 * hashed as `sha256` (hex), a `name` for logs and metrics, the `principal` it authenticates as (default:
 * the name), optional allowances and limits.
 */
const apiKey = z
  .strictObject({
    name,
    key: z.string().min(16, 'an API key must be at least 16 characters').optional(),
    sha256: z.string().regex(HEX_SHA256, 'expected 64 lower-case hex digits').optional(),
    principal: z.string().min(1).max(256).optional(),
    allow: allowances.optional(),
    limits: keyLimits.optional(),
  })
  .superRefine((k, ctx) => {
    if ((k.key === undefined) === (k.sha256 === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of "key" or "sha256"' });
    }
  })
  .transform(({ key, sha256, ...rest }) => ({
    ...rest,
    principal: rest.principal ?? rest.name,
    sha256: sha256 ?? createHash('sha256').update(key!).digest('hex'),
  }));

/** A file of API keys (YAML: a list of entries as under `auth.apiKeys.keys`), read at load. */
const keysFile = z.string().transform((file, ctx) => {
  try {
    const parsed = z.array(apiKey).safeParse(parseYaml(readFileSync(file, 'utf8')) ?? []);
    if (parsed.success) return parsed.data;
    ctx.addIssue({ code: 'custom', message: `keys file "${file}": ${parsed.error.issues[0]?.message}` });
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    ctx.addIssue({ code: 'custom', message: `cannot read keys file "${file}" (${reason})` });
  }
  return z.NEVER;
});

const jwt = z.strictObject({
  /** Where the signing keys are (fetched at start, cached, refreshed in the background and on an unknown `kid`). */
  jwksUrl: httpUrl,
  /** Required `iss`. */
  issuer: z.string().min(1),
  /** Required `aud` (one of them). */
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  /** Tolerated clock difference for `exp` / `nbf` / `iat`. */
  clockSkew: duration.default(30_000),
  /** The claim that names the caller. */
  principalClaim: z.string().min(1).default('sub'),
  /** Accepted signing algorithms (never `none`). */
  algorithms: z
    .array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']))
    .default(['RS256', 'ES256']),
  /** How often the key set is fetched again in the background (key rotation). */
  refreshInterval: duration.default(600_000),
  /**
   * A token signed by a key the set does not have (a rotation) fetches the set again, at most this often:
   * a stream of made-up key ids cannot make the gateway hammer the identity provider.
   */
  refetchCooldown: duration.default(5_000),
  /** Authorization servers named in the protected-resource metadata (RFC 9728); default: the issuer. */
  authorizationServers: z.array(httpUrl).optional(),
});

export const authSchema = z
  .strictObject({
    /** API keys, read from `Authorization: Bearer <key>` or the `header` named here. */
    apiKeys: z
      .strictObject({
        /** `authorization` (a bearer token) or another header holding the key as is, e.g. `x-api-key`. */
        header: z
          .string()
          .transform((h) => h.toLowerCase())
          .default('authorization'),
        keys: z.array(apiKey).default([]),
        /** More keys, from a YAML file (a list of the same entries). */
        file: keysFile.optional(),
      })
      .optional(),
    /** JWT bearer tokens (OAuth 2.1 access tokens), verified against a JWKS. */
    jwt: jwt.optional(),
    /**
     * `header`: believe `server.principalHeader` as the caller's identity, unverified. Only for a gateway
     * behind a proxy that authenticates callers and sets that header itself.
     */
    trust: z.enum(['header']).optional(),
  })
  .superRefine((auth, ctx) => {
    if (auth.apiKeys === undefined && auth.jwt === undefined && auth.trust === undefined) {
      ctx.addIssue({ code: 'custom', message: 'configure apiKeys, jwt or trust: header' });
    }
    if (auth.trust !== undefined && (auth.apiKeys !== undefined || auth.jwt !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['trust'],
        message: 'trust: header replaces apiKeys and jwt; use one',
      });
    }
    const seen = new Set<string>();
    for (const k of [...(auth.apiKeys?.keys ?? []), ...(auth.apiKeys?.file ?? [])]) {
      if (seen.has(k.sha256))
        ctx.addIssue({ code: 'custom', path: ['apiKeys'], message: `key "${k.name}" is listed twice` });
      seen.add(k.sha256);
    }
  });

/** Request rate limits every caller gets: per verified principal, per client address. */
export const rateLimitsSchema = z.strictObject({
  perPrincipal: bucketSchema.optional(),
  perIp: bucketSchema.optional(),
});

export type AuthConfig = z.output<typeof authSchema>;
export type ApiKeyConfig = z.output<typeof apiKey>;
export type BucketConfig = z.output<typeof bucketSchema>;
export type RateLimitsConfig = z.output<typeof rateLimitsSchema>;
