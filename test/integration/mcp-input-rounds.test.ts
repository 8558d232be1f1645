import { fileURLToPath } from 'node:url';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, emulatorServer, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';

const KEY_A = 'key-alice-0123456789abcdef';
const KEY_B = 'key-bob-0123456789abcdef';
/** The emulator pinned to 2025-11-25: its sampling / elicitation / roots are real requests during a call. */
const LEGACY_EMULATOR = emulatorServer({ extra: 'era: 2025-11-25' });
const FIXTURE = fileURLToPath(new URL('../fixtures/mcp-conformance-server.ts', import.meta.url));
/** The conformance fixture over stdio as a 2025-era server (its prompt that asks for context included). */
const LEGACY_FIXTURE = `{ type: stdio, command: ${JSON.stringify(process.execPath)}, args: ${JSON.stringify(['--import', 'tsx', FIXTURE, '--stdio'])}, env: { MCP_FIXTURE_LEGACY_ONLY: "1" }, pool: { min: 1, max: 1 } }`;

interface Rounds {
  resultType?: string;
  inputRequests?: Record<string, { method: string; params?: Record<string, unknown> }>;
  requestState?: string;
  content?: Array<{ type: string; text?: string }>;
}

const textOf = (result: Rounds) => (result.content ?? []).map((item) => item.text ?? item.type).join('');

/**
 * A v2 client pinned to 2026-07-28, declaring sampling, elicitation and roots. `auto` fulfils input rounds
 * through its own handlers (what real clients do); `manual` hands each `input_required` result back.
 */
async function modernClient(url: string, key: string, mode: 'auto' | 'manual'): Promise<Client> {
  const client = new Client(
    { name: `rounds-${mode}`, version: '1.0.0' },
    {
      capabilities: { sampling: {}, elicitation: { form: {} }, roots: {} },
      versionNegotiation: { mode: { pin: '2026-07-28' } },
      inputRequired: { autoFulfill: mode === 'auto' },
    },
  );
  client.setRequestHandler('sampling/createMessage', (request) => {
    const first = request.params.messages[0]?.content as { text?: string } | undefined;
    return {
      role: 'assistant',
      content: { type: 'text', text: `sampled: ${first?.text ?? ''}` },
      model: 'test-model',
    };
  });
  client.setRequestHandler('elicitation/create', (request) => {
    const told = `told: ${(request.params as { message: string }).message}`;
    return { action: 'accept', content: { answer: told, context: told } };
  });
  client.setRequestHandler('roots/list', () => ({ roots: [{ uri: 'file:///work/project' }] }));
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    }),
  );
  return client;
}

/** One `tools/call` whose `input_required` answer comes back as is (`extra`: a retry's fields). */
function callManually(client: Client, name: string, args: object, extra: object = {}): Promise<Rounds> {
  return client.request(
    { method: 'tools/call', params: { name, arguments: args, ...extra } },
    { allowInputRequired: true },
  );
}

/** The emulator's own counters (a plain call: it never waits for the interactive turn). */
async function emulatorStats(client: Client, server: string): Promise<{ cancelled: number }> {
  const result = await client.callTool({ name: `${server}__stats`, arguments: {} });
  return result.structuredContent as { cancelled: number };
}

describe('/mcp parks a 2025-era server’s input request as 2026-07-28 input_required rounds', () => {
  let gw: RunningGateway;
  const open: Client[] = [];
  const client = async (key: string, mode: 'auto' | 'manual') => {
    const made = await modernClient(gw.url, key, mode);
    open.push(made);
    return made;
  };

  beforeAll(async () => {
    gw = await startGateway(`
auth:
  apiKeys:
    keys:
      - { name: alice, key: "${KEY_A}" }
      - { name: bob, key: "${KEY_B}" }
upstreams: {}
mcp:
  inputWait: 1500ms
  maxParkedCalls: 1
  servers:
    a: ${LEGACY_EMULATOR}
    b: ${LEGACY_EMULATOR}
    conf: ${LEGACY_FIXTURE}
`);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(open.map((made) => made.close()));
    await gw?.close();
  });

  it('answers sampling, elicitation and roots of a 2025 stdio server through the SDK client’s own handlers', async () => {
    const alice = await client(KEY_A, 'auto');
    expect(alice.getProtocolEra()).toBe('modern');
    const sampled = await alice.callTool({ name: 'a__ask_llm', arguments: { prompt: 'hello' } });
    expect(textOf(sampled as Rounds)).toBe('sampled: hello');
    const elicited = await alice.callTool({ name: 'a__ask_user', arguments: { question: 'who?' } });
    expect(textOf(elicited as Rounds)).toBe('told: who?');
    const roots = await alice.callTool({ name: 'a__list_roots', arguments: {} });
    expect(textOf(roots as Rounds)).toBe('file:///work/project');
  });

  it('parks a prompts/get the same way', async () => {
    const alice = await client(KEY_A, 'auto');
    const prompt = await alice.getPrompt({ name: 'conf__test_input_required_result_prompt' });
    expect(prompt.messages).toEqual([
      { role: 'user', content: { type: 'text', text: 'Context: told: What context should the prompt use?' } },
    ]);
  });

  it('sends the server’s request as an inputRequest with a signed requestState, and resumes the parked call on the retry', async () => {
    const alice = await client(KEY_A, 'manual');
    const args = { prompt: 'by hand' };
    const first = await callManually(alice, 'a__ask_llm', args);
    expect(first.resultType).toBe('input_required');
    const [[key, request]] = Object.entries(first.inputRequests ?? {}) as [[string, { method: string }]];
    expect(request).toMatchObject({
      method: 'sampling/createMessage',
      params: { messages: [{ role: 'user', content: { type: 'text', text: 'by hand' } }] },
    });
    expect(first.requestState).toMatch(/^slipstream\.park\.v1\./);
    const answer = { role: 'assistant', content: { type: 'text', text: 'manual answer' }, model: 'm' };
    const done = await callManually(alice, 'a__ask_llm', args, {
      inputResponses: { [key]: answer },
      requestState: first.requestState,
    });
    expect(textOf(done)).toBe('manual answer');
    // The round is spent: the same state again names nothing that waits.
    await expect(
      callManually(alice, 'a__ask_llm', args, {
        inputResponses: { [key]: answer },
        requestState: first.requestState,
      }),
    ).rejects.toMatchObject({ code: -32602, data: { code: 'GW_MCP_REQUEST_STATE_EXPIRED' } });
  });

  it('refuses a tampered requestState, another caller’s, and one replayed onto another tool, then still resumes with the real one', async () => {
    const alice = await client(KEY_A, 'manual');
    const bob = await client(KEY_B, 'manual');
    const args = { question: 'name?' };
    const first = await callManually(alice, 'a__ask_user', args);
    const state = first.requestState!;
    const key = Object.keys(first.inputRequests ?? {})[0]!;
    const inputResponses = { [key]: { action: 'accept', content: { answer: 'x' } } };
    // One character of the MAC changed (the one before last: the last may carry unused base64url bits).
    const at = state.length - 2;
    const flipped = state.slice(0, at) + (state[at] === 'A' ? 'B' : 'A') + state.slice(at + 1);
    const invalid = { code: -32602, data: { code: 'GW_MCP_REQUEST_STATE_INVALID' } };
    await expect(
      callManually(alice, 'a__ask_user', args, { inputResponses, requestState: flipped }),
    ).rejects.toMatchObject(invalid);
    await expect(
      callManually(alice, 'a__ask_user', args, { inputResponses, requestState: 'forged' }),
    ).rejects.toMatchObject(invalid);
    await expect(
      callManually(bob, 'a__ask_user', args, { inputResponses, requestState: state }),
    ).rejects.toMatchObject(invalid);
    await expect(
      callManually(alice, 'a__list_roots', {}, { inputResponses, requestState: state }),
    ).rejects.toMatchObject(invalid);
    const done = await callManually(alice, 'a__ask_user', args, { inputResponses, requestState: state });
    expect(textOf(done)).toBe('x');
  });

  it('cancels the parked call upstream when the client does not come back in time, freeing its turn', async () => {
    const alice = await client(KEY_A, 'manual');
    const before = (await emulatorStats(alice, 'a')).cancelled;
    const first = await callManually(alice, 'a__ask_llm', { prompt: 'never answered' });
    expect(first.resultType).toBe('input_required');
    // inputWait is 1.5 s: then notifications/cancelled reaches the server, which stops waiting for sampling.
    await expect
      .poll(async () => (await emulatorStats(alice, 'a')).cancelled, { timeout: 10_000, interval: 200 })
      .toBe(before + 1);
    const key = Object.keys(first.inputRequests ?? {})[0]!;
    await expect(
      callManually(
        alice,
        'a__ask_llm',
        { prompt: 'never answered' },
        {
          inputResponses: {
            [key]: { role: 'assistant', content: { type: 'text', text: 'late' }, model: 'm' },
          },
          requestState: first.requestState,
        },
      ),
    ).rejects.toMatchObject({ code: -32602, data: { code: 'GW_MCP_REQUEST_STATE_EXPIRED' } });
    // The single process's interactive turn is free again: the next interactive call runs (it would wait
    // for the turn forever otherwise).
    const auto = await client(KEY_A, 'auto');
    const again = await auto.callTool({ name: 'a__ask_llm', arguments: { prompt: 'again' } });
    expect(textOf(again as Rounds)).toBe('sampled: again');
  });

  it('refuses to park more than maxParkedCalls, cancelling the refused call upstream', async () => {
    const alice = await client(KEY_A, 'manual');
    const before = (await emulatorStats(alice, 'b')).cancelled;
    const parked = await callManually(alice, 'a__ask_user', { question: 'one' });
    expect(parked.resultType).toBe('input_required');
    const gauge = async () =>
      /^slipstream_mcp_parked_calls (\d+)$/m.exec(String((await call(`${gw.adminUrl}/metrics`)).body))?.[1];
    expect(await gauge()).toBe('1');
    await expect(callManually(alice, 'b__ask_user', { question: 'two' })).rejects.toMatchObject({
      data: { code: 'GW_BULKHEAD_FULL' },
    });
    await expect
      .poll(async () => (await emulatorStats(alice, 'b')).cancelled, { timeout: 10_000, interval: 200 })
      .toBe(before + 1);
    // The parked one is unaffected.
    const key = Object.keys(parked.inputRequests ?? {})[0]!;
    const done = await callManually(
      alice,
      'a__ask_user',
      { question: 'one' },
      {
        inputResponses: { [key]: { action: 'accept', content: { answer: 'first' } } },
        requestState: parked.requestState,
      },
    );
    expect(textOf(done)).toBe('first');
    expect(await gauge()).toBe('0');
  });
});
