// The bench's identity provider: one API key and a JWKS on loopback, so `bench proxy` can measure what auth costs.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

export interface BenchAuth {
  /** `auth:` and `rateLimits:` YAML for a gateway that takes the API key below. */
  apiKeyConfig: string;
  apiKeyHeaders: Record<string, string>;
  /** `auth:` and `rateLimits:` YAML for a gateway that verifies JWTs against the JWKS below. */
  jwtConfig: string;
  jwtHeaders: Record<string, string>;
  close(): Promise<void>;
}

/** A limit no bench reaches: the bucket is checked on every request, never refused. */
const UNREACHED_LIMIT = 'rateLimits: { perPrincipal: { rate: 1000000000 } }';
const API_KEY = 'bench-api-key-0123456789abcdef';

/**
 * Serves an ES256 JWKS on a loopback port and signs one hour-long token with it: the gateway fetches the
 * set once at start-up and verifies the token's signature on every request, as it would an identity
 * provider's (RFC 7517 key set, RFC 7519 claims `iss`, `aud`, `sub`, `exp`).
 */
export async function startBenchAuth(): Promise<BenchAuth> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256', use: 'sig' };
  const body = JSON.stringify({ keys: [jwk] });
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'bench' })
    .setIssuer('bench')
    .setAudience('slipstream')
    .setSubject('bench-user')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(privateKey);
  return {
    apiKeyConfig: `auth: { apiKeys: { keys: [{ name: bench, key: "${API_KEY}" }] } }\n${UNREACHED_LIMIT}\n`,
    apiKeyHeaders: { authorization: `Bearer ${API_KEY}` },
    jwtConfig: `auth: { jwt: { jwksUrl: "${jwksUrl}", issuer: bench, audience: slipstream } }\n${UNREACHED_LIMIT}\n`,
    jwtHeaders: { authorization: `Bearer ${token}` },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
