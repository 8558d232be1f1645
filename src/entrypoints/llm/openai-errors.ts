// Gateway errors in OpenAI's shape, `{"error":{"message","type","param","code"}}`, for every OpenAI format.
import type { GatewayError } from '../../errors.js';
import { jsonErrorReply } from './format.js';
import type { ErrorReply } from './format.js';

/** OpenAI's `error.type` for a gateway error's status. */
export function openaiErrorType(status: number): string {
  if (status === 429) return 'rate_limit_error';
  if (status === 401) return 'authentication_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** The `error` object: OpenAI's fields, `code` the stable `GW_*` code, and the error's `data` when it has some. */
export function openaiErrorObject(error: GatewayError): Record<string, unknown> {
  return {
    code: error.code,
    message: error.message,
    type: openaiErrorType(error.status),
    param: null,
    ...(error.data === undefined ? {} : { data: error.data }),
  };
}

/** The error reply OpenAI clients read: status, `Retry-After` when the error has one, the JSON body. */
export function openaiErrorReply(error: GatewayError): ErrorReply {
  return jsonErrorReply(error, { error: openaiErrorObject(error) });
}
