import { describe, expect, it } from 'vitest';
import { stripHopByHop } from '../../src/pipeline/headers.js';

describe('stripHopByHop', () => {
  it('drops hop-by-hop headers, host, and headers named by Connection (RFC 9110 §7.6.1)', () => {
    const out = stripHopByHop({
      host: 'gw',
      connection: 'keep-alive, x-secret-hop',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      upgrade: 'websocket',
      te: 'trailers',
      'proxy-authorization': 'Basic x',
      'x-secret-hop': '1',
      'content-type': 'application/json',
      'x-custom': ['a', 'b'],
    });
    expect(out).toEqual({ 'content-type': 'application/json', 'x-custom': ['a', 'b'] });
  });
});
