// `GET /v1/responses/:id` (and its `cancel`, `DELETE`, `input_items`): requests about a stored response, sent to the provider holding it.
import { GatewayError } from '../../errors.js';
import type { Endpoint } from '../../server/exchange.js';
import { decodeSegment } from '../../server/request.js';
import { relay } from '../../streams/llm-relay.js';
import { providerVerdict } from '../../streams/provider-error.js';
import type { LlmProviders } from '../../upstreams/llm/providers.js';
import { retriedError, upstreamHeaders } from './endpoint.js';
import type { ResponseOwners } from './response-owners.js';
import { responsesFormat } from './responses.js';

export interface StoredResponsesOptions {
  providers: LlmProviders;
  owners: ResponseOwners;
  /** Largest request body (a `cancel` carries none, but a client may send one), in bytes. */
  maxRequestBytes: number;
}

/**
 * The endpoint under `/v1/responses/` (the path after it, the query too, is relayed as it is). A response
 * id names no model, so the provider comes from `owners`: the one that made the response, when this
 * instance relayed it. An id it does not know (made before a restart, through another replica, or
 * forgotten) is asked of every `openai` provider in config order until one does not answer 404: ids are
 * random, so no two providers hold the same one, and a read costs the provider nothing. The last 404 is
 * relayed as it is; any other answer, stream (`?stream=true`) or not, goes to the client and the owner is
 * remembered.
 */
export function storedResponsesEndpoint(options: StoredResponsesOptions): Endpoint {
  const { owners } = options;
  const all = options.providers.providerTargets(responsesFormat.providerTypes);
  return {
    route: 'responses',
    async handle(x) {
      const segment = x.rest.slice(1).split('/', 1)[0]!;
      const id = decodeSegment(segment);
      if (id === undefined || id === '') {
        throw new GatewayError('GW_BAD_REQUEST', 'the response id in the path is malformed');
      }
      const body = x.method === 'POST' ? await x.body(options.maxRequestBytes) : undefined;
      if (body === undefined) x.req.resume();
      const owner = owners.owner(id);
      const known = owner === undefined ? undefined : all.find((t) => t.provider === owner);
      const targets = known === undefined ? all : [known];
      if (targets.length === 0) {
        throw new GatewayError('GW_LLM_NO_PROVIDER', 'no openai provider is configured for responses');
      }
      const status = await relay({
        res: x.res,
        ctx: x.ctx,
        signal: x.signal,
        principal: x.principal,
        targets,
        method: x.method,
        path: `/responses${x.rest}${x.query}`,
        format: responsesFormat,
        headers: upstreamHeaders(x),
        body: () => (body === undefined || body.length === 0 ? undefined : body),
        transcript: undefined,
        tapped: true,
        onShutdown: (end) => x.onShutdown(end),
        // Not this provider's: ask the next one (the last one's 404 is the answer).
        verdict: (code, last) => (code === 404 && !last ? 'fallback' : providerVerdict(code)),
        onReply: (target) => owners.remember(id, target.provider),
      });
      return { written: true, status };
    },
    errorReply: (failure, x) => retriedError(responsesFormat.errorBody(failure), failure, x),
  };
}
