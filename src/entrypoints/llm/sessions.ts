// `GET /v1/sessions/:id`: a persisted conversation, only ever to the caller that wrote it.
import { GatewayError } from '../../errors.js';
import type { Endpoint } from '../../server/exchange.js';
import { decodeSegment } from '../../server/request.js';
import type { TranscriptBuffer } from '../../streams/transcript-buffer.js';
import { scopedSession } from './endpoint.js';

export interface SessionsOptions {
  transcripts: TranscriptBuffer;
  /** The header that names callers (for the 401 message). */
  principalHeader: string;
}

/**
 * The endpoint. Sessions are stored under the caller's identity (hashed), so another caller asking for the
 * same id gets an empty list; an anonymous caller gets 401 (anonymous callers share one scope and choose
 * their own ids: reading it back would leak).
 */
export function sessionsEndpoint(options: SessionsOptions): Endpoint {
  return {
    route: 'sessions',
    async handle(x) {
      const id = decodeSegment(x.rest.slice(1));
      if (id === undefined || id === '') {
        throw new GatewayError('GW_BAD_REQUEST', 'the session id in the path is malformed');
      }
      if (x.principal === undefined || x.principal === '') {
        throw new GatewayError(
          'GW_UNAUTHORIZED',
          'sessions are read by their owner: authenticate to read yours',
        );
      }
      let messages;
      try {
        messages = await options.transcripts.history(scopedSession(x.principal, id));
      } catch (error) {
        throw new GatewayError('GW_UPSTREAM_UNAVAILABLE', 'transcript store failed', { cause: error });
      }
      const body = Buffer.from(JSON.stringify({ object: 'list', session: id, data: messages }));
      return {
        status: 200,
        headers: { 'content-type': 'application/json; charset=utf-8', 'content-length': String(body.length) },
        body,
      };
    },
  };
}
