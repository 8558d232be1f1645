import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { Endpoint } from '../../src/server/exchange.js';
import { compileRoute, RouteTable } from '../../src/server/route-table.js';
import { Router } from '../../src/server/router.js';
import { makeReply } from '../helpers/calls.js';

const endpoint = (route: string): Endpoint => ({ route, handle: async () => makeReply(200) });
const mcp = endpoint('mcp');
const tools = endpoint('tools');
const chat = endpoint('chat');

function routes(yaml: string): RouteTable {
  const config = parseConfig(
    `upstreams:\n  a: { url: "http://127.0.0.1:1" }\nroutes:\n${yaml}`,
    't.yaml',
    {},
  );
  return new RouteTable(config.routes.map((r) => compileRoute(r, async () => makeReply(200))));
}

describe('the router', () => {
  const router = new Router(
    [
      { path: '/mcp', exact: true, endpoint: mcp },
      { path: '/tools', endpoint: tools },
      { path: '/v1/chat/completions', exact: true, methods: ['POST'], endpoint: chat },
    ],
    routes(`  - { name: internal, match: { prefix: /internal, methods: [GET] }, upstream: a }
  - { name: api, match: { prefix: /api }, upstream: a }
  - { name: users, match: { prefix: /api/users, methods: [GET] }, upstream: a }
  - { name: root, match: { prefix: / }, upstream: a }
`),
  );

  it('sends built-in paths to their endpoints even when a catch-all route exists', () => {
    expect(router.match('POST', undefined, '/mcp')).toMatchObject({
      kind: 'endpoint',
      endpoint: mcp,
      rest: '',
    });
    expect(router.match('POST', undefined, '/tools/quotes/get')).toMatchObject({
      kind: 'endpoint',
      endpoint: tools,
      rest: '/quotes/get',
    });
    expect(router.match('POST', undefined, '/v1/chat/completions')).toMatchObject({ endpoint: chat });
  });

  it('matches exact endpoints exactly and prefix endpoints on segment boundaries', () => {
    expect(router.match('POST', undefined, '/mcp/x')).toMatchObject({
      kind: 'proxy',
      route: { name: 'root' },
    });
    expect(router.match('GET', undefined, '/toolsx')).toMatchObject({
      kind: 'proxy',
      route: { name: 'root' },
    });
  });

  it('answers a built-in path with the wrong method as 405 with the allowed methods, never proxying it', () => {
    expect(router.match('GET', undefined, '/v1/chat/completions')).toEqual({ kind: 'none', allow: ['POST'] });
  });

  it('never lets a method a route refuses fall through to the catch-all route', () => {
    expect(router.match('POST', undefined, '/internal/x')).toEqual({ kind: 'none', allow: ['GET'] });
    expect(router.match('GET', undefined, '/internal/x')).toMatchObject({ route: { name: 'internal' } });
  });

  it('still lets a refused method fall through to a shorter route that is not the catch-all', () => {
    expect(router.match('DELETE', undefined, '/api/users/7')).toMatchObject({ route: { name: 'api' } });
  });

  it('reports an unknown path as no match without allowed methods (404)', () => {
    const bare = new Router([{ path: '/mcp', exact: true, endpoint: mcp }]);
    expect(bare.match('GET', undefined, '/else')).toEqual({ kind: 'none', allow: undefined });
  });
});
