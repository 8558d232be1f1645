// What the LLM emulator's wire formats share: one generation, and how a format writes it (whole or streamed).

/** One generation the emulator is producing, whatever the wire format. */
export interface Generation {
  /** The reply's id in its format (`chatcmpl-…`, `resp_…`, `msg_…`). */
  readonly id: string;
  /** The `model` as received. */
  readonly model: string;
  /** Unix seconds. */
  readonly created: number;
  /** Tokens the reply has (after `max_tokens`-like caps). */
  readonly count: number;
  /** The text of token `i`. */
  piece(i: number): string;
  /** Input tokens, estimated from the request (a quarter of its characters, rounded up). */
  readonly promptTokens: number;
  /** The parsed request body. */
  readonly body: Readonly<Record<string, unknown>>;
}

/** A reply being streamed: the bytes before, for and after each token. */
export interface SurfaceStream {
  /** The events before the first token, and how many there are. */
  readonly head: string;
  readonly headEvents: number;
  /** One event carrying `piece`. */
  token(piece: string): string;
  /** The events after the last token; `text` is the whole reply. */
  tail(text: string): string;
  readonly tailEvents: number;
}

/** One wire format the emulator speaks. */
export interface Surface {
  /** A JSON error body as this format's provider sends it. `status` picks the error type. */
  errorBody(status: number, message: string): unknown;
  /** A 400 body saying the prompt is too long, as the provider words it. */
  contextLengthError(promptTokens: number): unknown;
  /** The whole non-streamed reply. */
  reply(gen: Generation, text: string): unknown;
  /** A streamed reply; `includeUsage` only matters where usage is optional (chat completions). */
  stream(gen: Generation, includeUsage: boolean): SurfaceStream;
}

/** Context window the emulated models claim in their context-length errors. */
export const CONTEXT_TOKENS = 8192;

/** One SSE event with an `event:` name (Responses and Messages name every event). */
export function namedEvent(name: string, data: string): string {
  return `event: ${name}\ndata: ${data}\n\n`;
}
