import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { compileRoute, RouteTable } from '../../src/server/route-table.js';
import { makeReply } from '../helpers/calls.js';

function table(routesYaml: string): RouteTable {
  const config = parseConfig(
    `upstreams:\n  a: { url: "http://127.0.0.1:1" }\nroutes:\n${routesYaml}`,
    't.yaml',
    {},
  );
  return new RouteTable(config.routes.map((r) => compileRoute(r, async () => makeReply(200))));
}

describe('route table', () => {
  const routes = table(`  - { name: api, match: { prefix: /api }, upstream: a, rewrite: /v2 }
  - { name: users, match: { prefix: /api/users/, methods: [GET] }, upstream: a }
  - { name: internal, match: { prefix: /internal, host: admin.example.com }, upstream: a }
  - { name: root, match: { prefix: / }, upstream: a }
`);

  it('prefers the longest prefix and matches on segment boundaries', () => {
    expect(routes.match('GET', undefined, '/api/users/7')).toMatchObject({ route: { name: 'users' } });
    expect(routes.match('GET', undefined, '/api/orders')).toMatchObject({ route: { name: 'api' } });
    expect(routes.match('GET', undefined, '/apix')).toMatchObject({ route: { name: 'root' } });
  });

  it('rewrites the matched prefix', () => {
    expect(routes.match('GET', undefined, '/api/orders/1')).toMatchObject({ upstreamPath: '/v2/orders/1' });
    expect(routes.match('GET', undefined, '/api')).toMatchObject({ upstreamPath: '/v2' });
    expect(routes.match('GET', undefined, '/other')).toMatchObject({ upstreamPath: '/other' });
  });

  it('falls through to other routes when the method does not match', () => {
    expect(routes.match('DELETE', undefined, '/api/users/7')).toMatchObject({ route: { name: 'api' } });
  });

  it('matches the host without its port, case-insensitively', () => {
    expect(routes.match('GET', 'Admin.Example.com:8080', '/internal/x')).toMatchObject({
      route: { name: 'internal' },
    });
    expect(routes.match('GET', 'other.example.com', '/internal/x')).toMatchObject({
      route: { name: 'root' },
    });
  });

  it('reports no route, and whether only the method was wrong', () => {
    const narrow = table(`  - { match: { prefix: /only, methods: [POST] }, upstream: a }\n`);
    expect(narrow.match('GET', undefined, '/only')).toEqual({ route: undefined, methodMismatch: true });
    expect(narrow.match('GET', undefined, '/else')).toEqual({ route: undefined, methodMismatch: false });
  });
});
