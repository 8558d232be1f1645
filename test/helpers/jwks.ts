// A JWKS endpoint on loopback with a rotatable key set, and ES256 tokens signed by its keys.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey, JWK } from 'jose';

/** A JWKS endpoint on loopback whose key set can be rotated, counting fetches. */
export async function startJwks() {
  let keys: JWK[] = [];
  let fetches = 0;
  const server: Server = createServer((_req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  const newKey = async (kid: string) => {
    const pair = await generateKeyPair('ES256');
    return {
      kid,
      privateKey: pair.privateKey,
      jwk: { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256' },
    };
  };
  return {
    url,
    fetches: () => fetches,
    newKey,
    publish: (...jwks: JWK[]) => (keys = jwks),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

export async function token(
  key: { kid: string; privateKey: CryptoKey },
  claims: { sub?: string; aud?: string; iss?: string; expiresIn?: string } = {},
): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: key.kid })
    .setSubject(claims.sub ?? 'user-1')
    .setAudience(claims.aud ?? 'slipstream')
    .setIssuer(claims.iss ?? 'https://issuer.test')
    .setIssuedAt()
    .setExpirationTime(claims.expiresIn ?? '5m')
    .sign(key.privateKey);
}
