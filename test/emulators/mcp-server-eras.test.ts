import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { afterEach, describe, expect, it } from 'vitest';

const EMULATOR = fileURLToPath(new URL('../../emulators/mcp-server.ts', import.meta.url));
const ERAS = [
  ['2025-11-25', 'legacy' as const],
  ['2026-07-28', { pin: '2026-07-28' }],
] as const;

const open: Client[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((client) => client.close()));
});

async function connect(mode: 'legacy' | { pin: string }): Promise<Client> {
  const client = new Client(
    { name: 'emulator-test', version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: {}, roots: {} }, versionNegotiation: { mode } },
  );
  client.setRequestHandler('sampling/createMessage', () => ({
    role: 'assistant',
    content: { type: 'text', text: 'sampled answer' },
    model: 'test-model',
  }));
  client.setRequestHandler('elicitation/create', () => ({
    action: 'accept',
    content: { answer: 'from the user' },
  }));
  client.setRequestHandler('roots/list', () => ({ roots: [{ uri: 'file:///srv/data', name: 'data' }] }));
  open.push(client);
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: ['--import', 'tsx', EMULATOR],
      stderr: 'pipe',
    }),
  );
  return client;
}

const textOf = (result: { content?: unknown }) =>
  (result.content as Array<{ text?: string }>).map((block) => block.text ?? '').join('');

describe.each(ERAS)('the stdio MCP emulator speaking %s', (_revision, mode) => {
  it('keeps the quote tools and counts one connection for the process', async () => {
    const client = await connect(mode);
    const quote = await client.callTool({ name: 'get_quote', arguments: { symbol: 'acme' } });
    expect(quote.structuredContent).toMatchObject({ symbol: 'ACME', currency: 'USD' });
    const stats = await client.callTool({ name: 'stats', arguments: {} });
    expect(stats.structuredContent).toMatchObject({ initializeCount: 1 });
  });

  it('lists and reads resources, a template with completion, and subscribable ones', async () => {
    const client = await connect(mode);
    const { resources } = await client.listResources();
    expect(resources.map((resource) => resource.uri)).toEqual(['emulator://stats', 'emulator://watched']);
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((template) => template.uriTemplate)).toEqual(['quote://{symbol}']);
    const read = await client.readResource({ uri: 'quote://msft' });
    expect(JSON.parse((read.contents[0] as { text: string }).text)).toMatchObject({ symbol: 'MSFT' });
    const completion = await client.complete({
      ref: { type: 'ref/resource', uri: 'quote://{symbol}' },
      argument: { name: 'symbol', value: 'a' },
    });
    expect(completion.completion.values).toEqual(['AAPL', 'ACME', 'AMZN']);
    expect(client.getServerCapabilities()?.resources).toMatchObject({ subscribe: true, listChanged: true });
  });

  it('serves prompts with argument completion', async () => {
    const client = await connect(mode);
    const { prompts } = await client.listPrompts();
    expect(prompts.map((prompt) => prompt.name)).toEqual(['quote_brief', 'daily_summary']);
    const prompt = await client.getPrompt({ name: 'quote_brief', arguments: { symbol: 'nvda' } });
    expect(JSON.stringify(prompt.messages)).toContain('brief on NVDA');
    const completion = await client.complete({
      ref: { type: 'ref/prompt', name: 'quote_brief' },
      argument: { name: 'symbol', value: 'g' },
    });
    expect(completion.completion.values).toEqual(['GOOG']);
  });

  it('asks the client for a sample, an answer and its roots', async () => {
    const client = await connect(mode);
    const sampled = await client.callTool({ name: 'ask_llm', arguments: { prompt: 'hello?' } });
    expect(textOf(sampled)).toBe('sampled answer');
    const asked = await client.callTool({ name: 'ask_user', arguments: { question: 'why?' } });
    expect(textOf(asked)).toBe('from the user');
    const roots = await client.callTool({ name: 'list_roots', arguments: {} });
    expect(textOf(roots)).toBe('file:///srv/data');
  });
});

describe('the stdio MCP emulator on a 2025-11-25 session', () => {
  it('sends log lines during a call at the level the client set', async () => {
    const client = await connect('legacy');
    const lines: string[] = [];
    client.setNotificationHandler('notifications/message', (notification) => {
      lines.push(`${notification.params.level}: ${String(notification.params.data)}`);
    });
    await client.setLoggingLevel('info');
    await client.callTool({ name: 'log', arguments: { count: 2, level: 'info', intervalMs: 0 } });
    await client.callTool({ name: 'log', arguments: { count: 1, level: 'debug', intervalMs: 0 } });
    await expect.poll(() => lines).toEqual(['info: log line 1 of 2', 'info: log line 2 of 2']);
  });

  it('announces resource updates to a subscriber and resource list changes', async () => {
    const client = await connect('legacy');
    const events: string[] = [];
    client.setNotificationHandler('notifications/resources/updated', (n) => void events.push(n.params.uri));
    client.setNotificationHandler(
      'notifications/resources/list_changed',
      () => void events.push('list_changed'),
    );
    await client.subscribeResource({ uri: 'emulator://watched' });
    await client.callTool({ name: 'touch_resource', arguments: {} });
    await client.callTool({ name: 'add_resource', arguments: { name: 'late' } });
    await expect.poll(() => events).toEqual(['emulator://watched', 'list_changed']);
    const read = await client.readResource({ uri: 'emulator://watched' });
    expect((read.contents[0] as { text: string }).text).toBe('version 2');
  });

  it('lists a tool that must run as a task, and refuses a direct call of it', async () => {
    const client = await connect('legacy');
    const { tools } = await client.listTools();
    expect(tools.find((tool) => tool.name === 'long_report')?.execution).toEqual({ taskSupport: 'required' });
    const result = await client.callTool({ name: 'long_report', arguments: {} });
    expect(result.isError).toBe(true);
  });
});

describe('the stdio MCP emulator on 2026-07-28', () => {
  it('sends log lines during a call only at the level the request asked for', async () => {
    const client = await connect({ pin: '2026-07-28' });
    const lines: string[] = [];
    client.setNotificationHandler('notifications/message', (notification) => {
      lines.push(`${notification.params.level}: ${String(notification.params.data)}`);
    });
    const logLevel = { 'io.modelcontextprotocol/logLevel': 'info' };
    await client.callTool({ name: 'log', arguments: { count: 2, intervalMs: 0 }, _meta: logLevel });
    await client.callTool({ name: 'log', arguments: { count: 1, intervalMs: 0 } });
    await expect.poll(() => lines).toEqual(['info: log line 1 of 2', 'info: log line 2 of 2']);
  });

  it('announces resource updates on a subscriptions/listen stream', async () => {
    const client = await connect({ pin: '2026-07-28' });
    const updated: string[] = [];
    client.setNotificationHandler('notifications/resources/updated', (n) => void updated.push(n.params.uri));
    const subscription = await client.listen({ resourceSubscriptions: ['emulator://watched'] });
    await client.callTool({ name: 'touch_resource', arguments: {} });
    await expect.poll(() => updated).toEqual(['emulator://watched']);
    await subscription.close();
  });

  it('does not list the task-only tool as taking tasks (2026-07-28 moved tasks to an extension)', async () => {
    const client = await connect({ pin: '2026-07-28' });
    const { tools } = await client.listTools();
    expect(tools.find((tool) => tool.name === 'long_report')?.execution).toBeUndefined();
  });
});
