// What a provider's non-2xx answer means for the client: try the next provider, relay it as it is, or which GW_* error.
import { GatewayError } from '../errors.js';
import type { Headers } from '../pipeline/types.js';
import { parseRetryAfterMs } from '../policies/retry.js';

/** A provider's answer, its body read (error bodies are small and bounded by the relay). */
export interface ProviderAnswer {
  status: number;
  headers: Headers;
  body: Buffer;
}

/** Longest provider message kept in a gateway error. */
const MAX_MESSAGE_CHARS = 1_000;

/**
 * Whether a non-2xx status says the provider failed (`fallback`: worth the next provider, if any) or
 * the request did (`relay`: the provider's status and body go to the client as they are). 429, 5xx,
 * 401/403 (the gateway's key) and 408 are the provider's; every other 4xx (a context-length error, a
 * content-policy refusal, an unknown `previous_response_id`) is about the request, and another
 * provider would refuse it too.
 */
export function providerVerdict(status: number): 'fallback' | 'relay' {
  return status === 429 || status >= 500 || status === 401 || status === 403 || status === 408
    ? 'fallback'
    : 'relay';
}

/**
 * The message in a provider's error body: `error.message` (OpenAI and Anthropic alike), a top-level
 * `message`, a string `error`, or the body's text when it is not JSON; at most 1,000 characters.
 * Undefined for an empty body.
 */
export function providerMessage(body: Buffer): string | undefined {
  const text = body.toString('utf8').trim();
  if (text === '') return undefined;
  let message: unknown = text;
  try {
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
    const error = parsed.error as { message?: unknown } | string | undefined;
    message =
      typeof error === 'string'
        ? error
        : typeof error?.message === 'string'
          ? error.message
          : typeof parsed.message === 'string'
            ? parsed.message
            : text;
  } catch {
    // not JSON: the text itself
  }
  const kept = String(message);
  return kept.length > MAX_MESSAGE_CHARS ? `${kept.slice(0, MAX_MESSAGE_CHARS)}…` : kept;
}

/**
 * The gateway error for the last provider failure once retries and fallbacks are exhausted (for a
 * `fallback` verdict; a `relay` one is relayed as it is):
 * - 429 → `GW_UPSTREAM_RATE_LIMITED` (429) with the provider's `Retry-After` (1 s when it sent none);
 * - 401/403 → `GW_UPSTREAM_AUTH_FAILED` (502): the gateway's credential, never the client's fault; the
 *   provider's message is left out (it may quote part of the key);
 * - 408/504 → `GW_UPSTREAM_TIMEOUT` (504);
 * - other 5xx → `GW_UPSTREAM_UNAVAILABLE` (502).
 * The message names the provider (`label`, e.g. `openai/gpt-4o`) and keeps the provider's own message;
 * `data` carries the provider's status and message for clients that read it.
 */
export function providerError(answer: ProviderAnswer, label: string, now = Date.now()): GatewayError {
  const { status } = answer;
  const auth = status === 401 || status === 403;
  const message = auth ? undefined : providerMessage(answer.body);
  const text = `${label} answered ${status}${message === undefined ? '' : `: ${message}`}`;
  const data = {
    provider: label,
    providerStatus: status,
    ...(message === undefined ? {} : { providerMessage: message }),
  };
  const retryAfterMs = parseRetryAfterMs(answer.headers['retry-after'], now);
  const retryAfterS = retryAfterMs === undefined ? undefined : Math.max(1, Math.ceil(retryAfterMs / 1000));
  if (status === 429)
    return new GatewayError('GW_UPSTREAM_RATE_LIMITED', text, { data, retryAfterS: retryAfterS ?? 1 });
  if (auth) return new GatewayError('GW_UPSTREAM_AUTH_FAILED', text, { data });
  if (status === 408 || status === 504) return new GatewayError('GW_UPSTREAM_TIMEOUT', text, { data });
  return new GatewayError('GW_UPSTREAM_UNAVAILABLE', text, { data, retryAfterS });
}
