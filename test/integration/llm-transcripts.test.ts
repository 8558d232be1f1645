// Transcripts of Responses and Messages conversations, as for chat: the adapters extract the text, the same buffer stores it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedContent, startLlmEmulator } from '../../emulators/llm.js';
import type { RunningLlmEmulator } from '../../emulators/llm.js';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { anthropicClient, openaiClient } from '../helpers/llm-clients.js';

const TOKENS = 12;
/** The caller every request is made as, and the history is read back as. */
const OWNER_KEY = 'owner';

interface Message {
  role: string;
  content: string;
  complete: boolean;
}

let emulator: RunningLlmEmulator;
let gw: RunningGateway;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'slipstream-llm-transcripts-'));
  emulator = await startLlmEmulator({ tokens: TOKENS, gap: '1ms' });
  gw = await startGateway(`
# The caller's identity is the principal header, believed as is (this test is about storage, not auth).
auth: { trust: header }
upstreams: {}
llm:
  providers:
    emu: { baseUrl: "${emulator.url}/v1", models: { gpt: emu-small } }
    claude: { type: anthropic, baseUrl: "${emulator.url}/v1", models: { sonnet: claude-emu } }
  transcripts:
    store: sqlite
    sqlite: { path: "${join(dir, 'transcripts.db')}" }
    interval: 20ms
`);
});

afterAll(async () => {
  await gw?.close();
  await emulator?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Waits until the session holds `count` messages, the last a complete reply; returns them. */
async function settled(session: string, count: number): Promise<Message[]> {
  let messages: Message[] = [];
  await expect
    .poll(
      async () => {
        const reply = await call(`${gw.url}/v1/sessions/${session}`, {
          headers: { authorization: `Bearer ${OWNER_KEY}` },
        });
        messages = (reply.body as { data: Message[] }).data;
        return messages.length === count && messages.at(-1)!.complete;
      },
      { timeout: 10_000 },
    )
    .toBe(true);
  return messages;
}

const stripped = (messages: Message[]) => messages.map(({ role, content }) => ({ role, content }));

describe('transcripts of the Responses and Messages surfaces', () => {
  it('stores a Responses conversation, streamed and not, with its instructions and each reply as relayed', async () => {
    const session = `responses-${Date.now()}`;
    const client = openaiClient(gw.url, { apiKey: OWNER_KEY });
    const first = await client.responses.create({
      model: 'gpt',
      instructions: 'be brief',
      input: 'hello',
      metadata: { session_id: session },
    });
    const streamed = await client.responses
      .stream({
        model: 'gpt',
        input: [{ role: 'user', content: 'again' }],
        metadata: { session_id: session },
      })
      .finalResponse();
    expect(first.output_text).toBe(expectedContent(TOKENS));
    expect(stripped(await settled(session, 5))).toEqual([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: first.output_text },
      { role: 'user', content: 'again' },
      { role: 'assistant', content: streamed.output_text },
    ]);
  });

  it('stores a Messages conversation named by x-slipstream-session, streamed and not, with its system prompt', async () => {
    const session = `messages-${Date.now()}`;
    const client = anthropicClient(gw.url, {
      apiKey: OWNER_KEY,
      headers: { 'x-slipstream-session': session },
    });
    const params = { model: 'sonnet', max_tokens: 100, system: 'be kind' };
    const first = await client.messages.create({ ...params, messages: [{ role: 'user', content: 'hi' }] });
    const text = (first.content[0] as { text: string }).text;
    const stream = client.messages.stream({
      ...params,
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: text },
        { role: 'user', content: [{ type: 'text', text: 'more' }] },
      ],
    });
    const final = await stream.finalMessage();
    expect(stripped(await settled(session, 5))).toEqual([
      { role: 'system', content: 'be kind' },
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: expectedContent(TOKENS) },
      { role: 'user', content: 'more' },
      { role: 'assistant', content: (final.content[0] as { text: string }).text },
    ]);
  });
});
