// OAuth 2.0 Protected Resource Metadata (RFC 9728) for `/mcp` and the other endpoints, when JWT auth is on.
import type { AuthConfig } from '../config/auth-schema.js';
import type { Endpoint } from '../server/exchange.js';

/**
 * `GET /.well-known/oauth-protected-resource[/<resource path>]` (RFC 9728 §3): names the resource, the
 * authorization servers that issue its tokens, and how tokens are sent. Public: MCP clients read it after
 * a 401 (the MCP authorization spec, 2025-11-25) to find where to get a token. Tokens are verified here and
 * never passed through upstream.
 */
export function protectedResourceEndpoint(jwt: NonNullable<AuthConfig['jwt']>): Endpoint {
  return {
    route: 'well-known',
    public: true,
    async handle(x) {
      const resource = `http://${x.req.headers.host ?? 'localhost'}${x.rest === '' ? '/' : x.rest}`;
      const body = Buffer.from(
        JSON.stringify({
          resource,
          authorization_servers: jwt.authorizationServers ?? [jwt.issuer],
          bearer_methods_supported: ['header'],
          resource_name: 'Slipstream',
        }),
      );
      return {
        status: 200,
        headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
        body,
      };
    },
  };
}
