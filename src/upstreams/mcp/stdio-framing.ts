// Cheaper framing for the SDK's stdio client transport: one schema per message shape, writes batched per turn.
import {
  STDIO_DEFAULT_MAX_BUFFER_SIZE,
  parseJSONRPCMessage,
  specTypeSchemas,
} from '@modelcontextprotocol/client';
import type { JSONRPCMessage, StandardSchemaV1 } from '@modelcontextprotocol/client';
import type { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import type { Writable } from 'node:stream';

/**
 * The four JSON-RPC message schemas of the SDK's union (all `.strict()`), so a message with a `result` can only
 * be a result response, one with `error` only an error response, `method` + `id` only a request and `method`
 * alone only a notification (JSON-RPC 2.0 section 4 and 5; MCP basic/index#messages).
 */
const schemas = specTypeSchemas as Record<string, StandardSchemaV1 | undefined>;
const RESULT = schemas.JSONRPCResultResponse;
const ERROR = schemas.JSONRPCErrorResponse;
const REQUEST = schemas.JSONRPCRequest;
const NOTIFICATION = schemas.JSONRPCNotification;

/** The one member of the SDK's message union a parsed line can match, by the keys it has. */
function schemaForShape(value: unknown): StandardSchemaV1 | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  if ('result' in value) return RESULT;
  if ('error' in value) return ERROR;
  if ('method' in value) return 'id' in value ? REQUEST : NOTIFICATION;
  return undefined;
}

/**
 * Validates one parsed message as the SDK's `deserializeMessage` does, with the same output, but against the
 * one schema its shape allows: the SDK's union tries every member in turn, and each failed member builds zod
 * issues (measured at about a fifth of the MCP layer's CPU per tool call). A message its own schema rejects
 * goes through the SDK's full union, which rejects it with the SDK's own error.
 */
export function parseMessage(value: unknown): JSONRPCMessage {
  const outcome = schemaForShape(value)?.['~standard'].validate(value);
  if (outcome !== undefined && !(outcome instanceof Promise) && outcome.issues === undefined) {
    return outcome.value as JSONRPCMessage;
  }
  return parseJSONRPCMessage(value);
}

/**
 * A drop-in for the SDK's stdio `ReadBuffer` (same size cap, same line framing, a line that is not JSON
 * skipped, a message that is not JSON-RPC thrown to the transport's `onerror`), validating through
 * {@link parseMessage}.
 */
export class StdioReadBuffer {
  private buffer: Buffer | undefined;

  constructor(private readonly maxBufferSize = STDIO_DEFAULT_MAX_BUFFER_SIZE) {}

  append(chunk: Buffer): void {
    if ((this.buffer?.length ?? 0) + chunk.length > this.maxBufferSize) {
      this.clear();
      throw new Error(`ReadBuffer exceeded maximum size of ${this.maxBufferSize} bytes`);
    }
    this.buffer = this.buffer === undefined ? chunk : Buffer.concat([this.buffer, chunk]);
  }

  readMessage(): JSONRPCMessage | null {
    while (this.buffer !== undefined) {
      const index = this.buffer.indexOf(0x0a);
      if (index === -1) return null;
      const line = this.buffer.toString('utf8', 0, index).replace(/\r$/, '');
      this.buffer = this.buffer.subarray(index + 1);
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        continue; // the SDK's framing skips a line that is not JSON (a stray log line on stdout)
      }
      return parseMessage(value);
    }
    return null;
  }

  clear(): void {
    this.buffer = undefined;
  }
}

/** The SDK transport's fields this module replaces or reads (private in its typings, stable in 2.x). */
interface TransportInternals {
  _readBuffer?: unknown;
  _serverParams?: { maxBufferSize?: number };
  _process?: { stdin?: Writable | null };
  send: StdioClientTransport['send'];
}

/**
 * Tunes one SDK `StdioClientTransport` instance, leaving its class alone (the SDK's era probe on a disposable
 * sibling process needs the exact base class):
 * - its read buffer becomes a {@link StdioReadBuffer};
 * - messages sent in the same event-loop turn go to the child in one write: each pipe write wakes the child,
 *   and that syscall was a quarter of the gateway's CPU per tool call at concurrency 16. The stream is corked
 *   at the first send of a turn and uncorked on `setImmediate`, so order is kept and a lone call waits for
 *   no more than the rest of the current turn.
 * A transport without the expected fields (another SDK version) is left as it is.
 */
export function tuneStdioTransport(transport: StdioClientTransport): void {
  const internals = transport as unknown as TransportInternals;
  if (internals._readBuffer !== undefined && typeof internals._readBuffer === 'object') {
    internals._readBuffer = new StdioReadBuffer(internals._serverParams?.maxBufferSize);
  }
  const send = internals.send.bind(transport);
  internals.send = (message) => {
    const stdin = internals._process?.stdin;
    if (stdin != null && stdin.writableCorked === 0 && !stdin.destroyed) {
      stdin.cork();
      setImmediate(() => stdin.uncork());
    }
    return send(message);
  };
}
