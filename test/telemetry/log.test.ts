import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { events } from '../../src/telemetry/events.js';
import { createLogger, subscribeRequestLog } from '../../src/telemetry/log.js';
import { makeCall } from '../helpers/calls.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { lines, logger: createLogger({ level: 'info', destination }) };
}

const end = (status: number, durationMs: number) => ({
  ctx: makeCall().ctx,
  method: 'GET',
  path: '/x',
  status,
  errorCode: undefined,
  durationMs,
});

let unsubscribe: (() => void) | undefined;
afterEach(() => unsubscribe?.());

describe('request log', () => {
  it('logs no ordinary request at sample rate 0, but always logs slow requests and 5xx', async () => {
    const { lines, logger } = capture();
    unsubscribe = subscribeRequestLog(logger, { sampleRate: 0, slowMs: 100 });
    events.requestEnd.publish(end(200, 5));
    events.requestEnd.publish(end(200, 150));
    events.requestEnd.publish(end(503, 5));
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines.map((l) => [l.msg, l.status])).toEqual([
      ['slow request', 200],
      ['request failed', 503],
    ]);
  });

  it('logs every request at sample rate 1', async () => {
    const { lines, logger } = capture();
    unsubscribe = subscribeRequestLog(logger, { sampleRate: 1 });
    events.requestEnd.publish(end(200, 5));
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'request', route: 'test', status: 200 });
  });

  it('redacts credentials wherever they appear', async () => {
    const { lines, logger } = capture();
    logger.info(
      {
        headers: { authorization: 'Bearer tok-123', 'x-api-key': 'key-456', accept: 'json' },
        upstream: { auth: { clientSecret: 'sec-789' } },
        token: 'tok-000',
      },
      'config',
    );
    await new Promise((resolve) => setImmediate(resolve));
    const text = JSON.stringify(lines);
    for (const secret of ['tok-123', 'key-456', 'sec-789', 'tok-000']) expect(text).not.toContain(secret);
    expect(text).toContain('"accept":"json"');
    expect(text).toContain('[redacted]');
  });
});
