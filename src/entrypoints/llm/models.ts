// `GET /v1/models`: the model names clients may ask for (OpenAI's list shape), built once.
import type { Endpoint } from '../../server/exchange.js';
import type { LlmProviders } from '../../upstreams/llm/providers.js';

/** The endpoint; the list is serialised once at start-up. */
export function modelsEndpoint(providers: LlmProviders): Endpoint {
  const body = Buffer.from(
    JSON.stringify({
      object: 'list',
      data: providers.models().map((m) => ({ id: m.id, object: 'model', created: 0, owned_by: m.provider })),
    }),
  );
  const headers = { 'content-type': 'application/json', 'content-length': String(body.length) };
  return {
    route: 'models',
    async handle(x) {
      x.req.resume();
      return { status: 200, headers, body };
    },
  };
}
