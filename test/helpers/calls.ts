// Builds Calls and Replies for policy unit tests.
import type { Call, Reply } from '../../src/pipeline/types.js';

export function makeCall(overrides: Partial<Call> = {}): Call {
  return {
    ctx: { id: 't', route: 'test', startedAt: performance.now(), upstreamMs: 0, attempts: 0 },
    upstream: 'up',
    method: 'GET',
    path: '/',
    headers: {},
    body: undefined,
    idempotent: true,
    principal: undefined,
    signal: new AbortController().signal,
    ...overrides,
  };
}

export function makeReply(status: number, headers: Reply['headers'] = {}): Reply {
  return { status, headers, body: Buffer.from(String(status)) };
}
