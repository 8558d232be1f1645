import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/load.js';
import { parseConfig } from '../../src/config/load.js';
import { llmProviders } from '../../src/upstreams/llm/providers.js';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';

const LLM = `
upstreams: {}
llm:
  providers:
    one: { baseUrl: "http://127.0.0.1:9/v1", models: { fast: m } }
    claude: { type: anthropic, baseUrl: "http://127.0.0.1:9/v1", models: { sonnet: s } }
  fallbacks: { fast: [one/x] }
`;

let gateway: RunningGateway | undefined;
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
});

describe('the llm config', () => {
  it('gives each provider a type, openai unless it says anthropic', () => {
    const { llm } = parseConfig(LLM, 't.yaml', {});
    expect(llm!.providers.one!.type).toBe('openai');
    expect(llm!.providers.claude!.type).toBe('anthropic');
    expect(() => parseConfig(LLM.replace('type: anthropic', 'type: gemini'), 't.yaml', {})).toThrow(
      ConfigError,
    );
  });

  it('serves no model named like an Object.prototype property', async () => {
    const providers = llmProviders(parseConfig(LLM, 't.yaml', {}).llm!);
    try {
      for (const model of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
        expect(providers.candidates(model, new Set(['openai', 'anthropic']))).toEqual([]);
      }
    } finally {
      await providers.close();
    }
  });

  it('answers 404 GW_LLM_NO_PROVIDER, not 500, for the model "constructor"', async () => {
    gateway = await startGateway(LLM);
    const response = await call(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'constructor', messages: [] }),
    });
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe('GW_LLM_NO_PROVIDER');
  });

  it('rejects a fallback to "constructor/x", a provider no one configured', () => {
    expect(() => parseConfig(LLM.replace('[one/x]', '[constructor/x]'), 't.yaml', {})).toThrow(
      /unknown model/,
    );
  });
});
