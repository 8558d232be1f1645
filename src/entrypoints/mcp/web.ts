// Node request/response ↔ web-standard Request/Response, for the v2 MCP SDK's web-standard transports.
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * A web `Request` for a Node request whose body was already read (`parsedBody` goes to the SDK separately,
 * so the Request carries none). `signal` aborts it when the client goes away.
 */
export function webRequest(req: IncomingMessage, signal: AbortSignal): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  return new Request(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`, {
    method: req.method,
    headers,
    signal,
  });
}

/** The request's headers as a Node-style record (lower-case names), for request contexts and cache directives. */
export function headerRecord(request: Request | undefined): Record<string, string> {
  const record: Record<string, string> = {};
  request?.headers.forEach((value, name) => (record[name] = value));
  return record;
}

/**
 * Writes a web `Response` (JSON or an SSE stream) to a Node response: the head at once, then each chunk as it
 * comes, in the background (a stream lives as long as its session). Resolves once the head is written.
 */
export function writeWebResponse(response: Response, res: ServerResponse): void {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => (headers[name] = value));
  res.writeHead(response.status, headers);
  // Node holds the head until the first body write: a standalone GET stream may stay silent for long,
  // and its client (or a replica relaying it) waits for the head to know the stream is open.
  if (headers['content-type']?.startsWith('text/event-stream') === true) res.flushHeaders();
  if (response.body === null) {
    res.end();
    return;
  }
  const reader: ReadableStreamDefaultReader<Uint8Array> = response.body.getReader();
  res.once('close', () => void reader.cancel().catch(() => {}));
  const pump = async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      res.write(value);
    }
    res.end();
  };
  pump().catch(() => res.destroy());
}
