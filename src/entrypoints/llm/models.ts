// `GET /v1/models` and `GET /v1/models/:id`: the model names clients may ask for, in OpenAI's shapes.
import { GatewayError } from '../../errors.js';
import type { Endpoint } from '../../server/exchange.js';
import { decodeSegment } from '../../server/request.js';
import type { LlmProviders } from '../../upstreams/llm/providers.js';
import { openaiErrorReply } from './openai-errors.js';

const JSON_TYPE = 'application/json';
/** Every provider type: a model is known when any provider serves it. */
const ANY_TYPE: ReadonlySet<string> = new Set(['openai', 'anthropic']);

function json(body: unknown) {
  const bytes = Buffer.from(JSON.stringify(body));
  return {
    status: 200,
    headers: { 'content-type': JSON_TYPE, 'content-length': String(bytes.length) },
    body: bytes,
  };
}

/**
 * The endpoint. The list (configured aliases) is serialised once at start-up. `GET /v1/models/:id`
 * answers for every name the gateway routes (an alias, or `provider/model` for a configured provider),
 * owned by the provider that serves it; any other name is 404 `GW_LLM_NO_PROVIDER` in OpenAI's error
 * shape (the openai SDK raises `NotFoundError`), as a chat request for it would be.
 */
export function modelsEndpoint(providers: LlmProviders): Endpoint {
  const list = json({
    object: 'list',
    data: providers.models().map((m) => ({ id: m.id, object: 'model', created: 0, owned_by: m.provider })),
  });
  return {
    route: 'models',
    async handle(x) {
      x.req.resume();
      if (x.rest === '' || x.rest === '/') return list;
      const id = decodeSegment(x.rest.slice(1));
      if (id === undefined || id === '') {
        throw new GatewayError('GW_BAD_REQUEST', 'the model id in the path is malformed');
      }
      const target = providers.candidates(id, ANY_TYPE)[0];
      if (target === undefined) {
        throw new GatewayError('GW_LLM_NO_PROVIDER', `the model '${id}' does not exist`, {
          data: { model: id },
        });
      }
      return json({ id, object: 'model', created: 0, owned_by: target.provider });
    },
    errorReply: (failure) => openaiErrorReply(failure),
  };
}
