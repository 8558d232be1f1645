import { describe, expect, it } from 'vitest';
import { providerError, providerMessage, providerVerdict } from '../../src/streams/provider-error.js';

const json = (body: unknown) => Buffer.from(JSON.stringify(body));

describe('provider error mapping', () => {
  it('falls back on 429, 5xx, 401/403 and 408, and relays every other 4xx as it is', () => {
    for (const status of [429, 500, 502, 503, 529, 401, 403, 408])
      expect(providerVerdict(status)).toBe('fallback');
    for (const status of [400, 404, 409, 413, 422]) expect(providerVerdict(status)).toBe('relay');
  });

  it('reads the message of OpenAI and Anthropic error bodies, plain messages and text, bounded', () => {
    expect(
      providerMessage(json({ error: { message: 'context too long', type: 'invalid_request_error' } })),
    ).toBe('context too long');
    expect(
      providerMessage(json({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })),
    ).toBe('Overloaded');
    expect(providerMessage(json({ message: 'plain' }))).toBe('plain');
    expect(providerMessage(json({ error: 'just a string' }))).toBe('just a string');
    expect(providerMessage(Buffer.from('Bad Gateway'))).toBe('Bad Gateway');
    expect(providerMessage(Buffer.from(''))).toBeUndefined();
    expect(providerMessage(Buffer.from('x'.repeat(5_000)))!.length).toBe(1_001);
  });

  it('maps a final 429 to 429 GW_UPSTREAM_RATE_LIMITED keeping Retry-After (seconds or date) and the message', () => {
    const limited = providerError(
      {
        status: 429,
        headers: { 'retry-after': '7' },
        body: json({ error: { message: 'Rate limit reached' } }),
      },
      'openai/gpt',
    );
    expect(limited).toMatchObject({ code: 'GW_UPSTREAM_RATE_LIMITED', status: 429, retryAfterS: 7 });
    expect(limited.message).toBe('openai/gpt answered 429: Rate limit reached');
    const now = Date.parse('2026-01-01T00:00:00Z');
    const dated = providerError(
      { status: 429, headers: { 'retry-after': 'Thu, 01 Jan 2026 00:00:30 GMT' }, body: Buffer.alloc(0) },
      'p/m',
      now,
    );
    expect(dated.retryAfterS).toBe(30);
    expect(providerError({ status: 429, headers: {}, body: Buffer.alloc(0) }, 'p/m').retryAfterS).toBe(1);
  });

  it("maps a final 5xx to 502 with the provider's message kept in the message and the data", () => {
    const error = providerError(
      { status: 500, headers: {}, body: json({ error: { message: 'emulated 500' } }) },
      'one/emu',
    );
    expect(error).toMatchObject({
      code: 'GW_UPSTREAM_UNAVAILABLE',
      status: 502,
      message: 'one/emu answered 500: emulated 500',
      data: { provider: 'one/emu', providerStatus: 500, providerMessage: 'emulated 500' },
    });
    expect(providerError({ status: 504, headers: {}, body: Buffer.alloc(0) }, 'p/m')).toMatchObject({
      code: 'GW_UPSTREAM_TIMEOUT',
      status: 504,
    });
  });

  it("maps a provider 401/403 to 502 GW_UPSTREAM_AUTH_FAILED without the provider's message, which may quote the key", () => {
    const error = providerError(
      {
        status: 401,
        headers: {},
        body: json({ error: { message: 'Incorrect API key provided: sk-abc***xyz' } }),
      },
      'p/m',
    );
    expect(error).toMatchObject({
      code: 'GW_UPSTREAM_AUTH_FAILED',
      status: 502,
      message: 'p/m answered 401',
    });
    expect(JSON.stringify(error.toJSON())).not.toContain('sk-abc');
  });
});
