import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { Job } from '../../src/jobs/job.js';
import { signWebhook, verifyWebhook, webhookSender } from '../../src/jobs/webhook.js';
import { events } from '../../src/telemetry/events.js';
import type { WebhookDeliveryEvent } from '../../src/telemetry/events.js';

const SECRET = 'sixteen-or-more-characters';

describe('webhook signatures', () => {
  it('signs HMAC-SHA256 over "<t>.<body>" and verifies only an intact, recent delivery', () => {
    const body = Buffer.from('{"id":"j1","status":"done"}');
    const t = 1_800_000_000;
    const v1 = signWebhook(SECRET, t, body);
    expect(v1).toBe(createHmac('sha256', SECRET).update(`${t}.${body.toString()}`).digest('hex'));
    const header = `t=${t},v1=${v1}`;
    expect(verifyWebhook(SECRET, header, body, t + 10)).toBe(true);
    expect(verifyWebhook(SECRET, header, Buffer.from('{"id":"j1","status":"failed"}'), t + 10)).toBe(false);
    expect(verifyWebhook('another-secret-entirely', header, body, t + 10)).toBe(false);
    expect(verifyWebhook(SECRET, header, body, t + 301)).toBe(false); // a replay, minutes later
    expect(verifyWebhook(SECRET, `t=${t + 1},v1=${v1}`, body, t + 10)).toBe(false); // the timestamp is signed
    expect(verifyWebhook(SECRET, undefined, body)).toBe(false);
  });
});

describe('webhook delivery', () => {
  const job = (callback: string): Job => ({
    id: 'j1',
    route: 'r',
    owner: 'o',
    idempotent: true,
    callback,
    status: 'done',
    createdAt: Date.now(),
    startedAt: Date.now(),
    finishedAt: Date.now(),
    attempts: 1,
    request: undefined,
    result: { status: 200, headers: {}, body: Buffer.from('ok') },
    error: undefined,
  });

  async function receiver(statuses: number[]) {
    const seen: Array<{ delivery: string; signature: string }> = [];
    const server = createServer((req, res) => {
      req.resume();
      seen.push({
        delivery: String(req.headers['x-slipstream-delivery']),
        signature: String(req.headers['x-slipstream-signature']),
      });
      res.writeHead(statuses[seen.length - 1] ?? 200).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
      seen,
      close: () => server.close(),
    };
  }

  function outcomes() {
    const seen: WebhookDeliveryEvent[] = [];
    const listener = (m: unknown) => seen.push(m as WebhookDeliveryEvent);
    events.webhookDelivery.subscribe(listener);
    return { seen, stop: () => events.webhookDelivery.unsubscribe(listener) };
  }

  it('retries 5xx with backoff under one delivery id until a 2xx', async () => {
    const r = await receiver([503, 500, 204]);
    const o = outcomes();
    const sender = webhookSender({
      secret: SECRET,
      attempts: 5,
      baseDelayMs: 5,
      maxDelayMs: 20,
      timeoutMs: 1_000,
      maxBodyBytes: 1024,
    });
    try {
      sender.deliver(job(r.url), '/jobs/j1');
      await expect.poll(() => o.seen.map((e) => e.outcome)).toEqual(['retrying', 'retrying', 'delivered']);
      expect(new Set(r.seen.map((s) => s.delivery)).size).toBe(1);
    } finally {
      o.stop();
      await sender.close();
      r.close();
    }
  });

  it('gives up on a 4xx the receiver means, and after the last attempt', async () => {
    const r = await receiver([400, 503, 503]);
    const o = outcomes();
    const sender = webhookSender({
      secret: SECRET,
      attempts: 2,
      baseDelayMs: 5,
      maxDelayMs: 20,
      timeoutMs: 1_000,
      maxBodyBytes: 1024,
    });
    try {
      sender.deliver(job(r.url), '/jobs/j1');
      await expect.poll(() => o.seen.map((e) => [e.outcome, e.status])).toEqual([['failed', 400]]);
      sender.deliver(job(r.url), '/jobs/j1');
      await expect.poll(() => o.seen.slice(1).map((e) => e.outcome)).toEqual(['retrying', 'failed']);
    } finally {
      o.stop();
      await sender.close();
      r.close();
    }
  });
});
