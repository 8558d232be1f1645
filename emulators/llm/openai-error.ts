// OpenAI's error body, `{"error":{"message","type","param","code"}}`, shared by every OpenAI surface.

/** The `error.type` OpenAI sends for a status. */
function errorType(status: number): string {
  if (status === 429) return 'requests';
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** The `error.code` OpenAI sends when none is given: only rate limits and bad keys have one. */
function defaultCode(status: number): string | null {
  if (status === 429) return 'rate_limit_exceeded';
  if (status === 401) return 'invalid_api_key';
  return null;
}

/** An OpenAI error body; `param` names the offending request field when there is one. */
export function openaiError(status: number, message: string, code?: string, param?: string): unknown {
  return {
    error: { message, type: errorType(status), param: param ?? null, code: code ?? defaultCode(status) },
  };
}

/** OpenAI's context-length message for a request of `tokens` tokens in a window of `limit`. */
export function openaiContextLength(tokens: number, limit: number): string {
  return `This model's maximum context length is ${limit} tokens. However, your messages resulted in ${tokens} tokens. Please reduce the length of the messages.`;
}
