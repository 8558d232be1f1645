import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authSchema } from '../../src/config/auth-schema.js';
import { createAuthenticator } from '../../src/server/auth.js';
import type { Authenticator } from '../../src/server/auth.js';
import { startJwks, token } from '../helpers/jwks.js';

type Jwks = Awaited<ReturnType<typeof startJwks>>;

/** An authenticator for `jwks`, no clock skew, fetching the key set again every `refreshMs`. */
function jwtAuthenticator(jwks: Jwks, refreshMs: number): Authenticator {
  const config = authSchema.parse({
    jwt: {
      jwksUrl: jwks.url,
      issuer: 'https://issuer.test',
      audience: 'slipstream',
      clockSkew: 0,
      refreshInterval: refreshMs,
      refetchCooldown: 0,
    },
  });
  return createAuthenticator(config, 'x-principal');
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('JWT verification, token seen again', () => {
  let jwks: Jwks;
  beforeAll(async () => {
    jwks = await startJwks();
  });
  afterAll(async () => {
    await jwks.close();
  });

  it('refuses a token it accepted once as soon as the token expires', async () => {
    const key = await jwks.newKey('k1');
    jwks.publish(key.jwk);
    const auth = jwtAuthenticator(jwks, 600_000);
    await auth.start();
    try {
      const shortLived = await token(key, { expiresIn: '2s' });
      for (let i = 0; i < 3; i++) {
        expect(await auth.authenticate(bearer(shortLived))).toMatchObject({ id: 'jwt:user-1' });
      }
      await sleep(2_100);
      await expect(auth.authenticate(bearer(shortLived))).rejects.toMatchObject({
        code: 'GW_UNAUTHORIZED',
        message: expect.stringContaining('expired'),
      });
    } finally {
      await auth.close();
    }
  });

  it('refuses a token it accepted once after the key set is fetched again without its key', async () => {
    const old = await jwks.newKey('old');
    jwks.publish(old.jwk);
    const auth = jwtAuthenticator(jwks, 200);
    await auth.start();
    try {
      const issued = await token(old);
      expect(await auth.authenticate(bearer(issued))).toMatchObject({ id: 'jwt:user-1' });
      const fresh = await jwks.newKey('new');
      jwks.publish(fresh.jwk); // "old" revoked
      const fetched = jwks.fetches();
      await expect.poll(() => jwks.fetches(), { timeout: 5_000 }).toBeGreaterThan(fetched);
      await sleep(100); // the fetch's answer has been read
      await expect(auth.authenticate(bearer(issued))).rejects.toMatchObject({ code: 'GW_UNAUTHORIZED' });
      expect(await auth.authenticate(bearer(await token(fresh)))).toMatchObject({ id: 'jwt:user-1' });
    } finally {
      await auth.close();
    }
  });
});
