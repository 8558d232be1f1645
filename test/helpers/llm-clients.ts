// The real LLM SDK clients tests drive, built against any origin (the emulator, or the gateway in front of it).
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import Anthropic from '@anthropic-ai/sdk';
import { ChatOpenAI } from '@langchain/openai';
import OpenAI from 'openai';

/** The key every client sends unless told otherwise (the emulator accepts any key unless given one). */
export const TEST_API_KEY = 'sk-test-key';

/**
 * Options shared by every client. SDK retries are off by default (`maxRetries: 0`) so a test sees
 * exactly the status the server sent; a test about retries sets its own.
 */
export interface ClientOptions {
  apiKey?: string;
  maxRetries?: number;
  headers?: Record<string, string>;
}

/** The official `openai` client; `origin` is the server's origin (`/v1` is appended). */
export function openaiClient(origin: string, options: ClientOptions = {}): OpenAI {
  return new OpenAI({
    baseURL: `${origin}/v1`,
    apiKey: options.apiKey ?? TEST_API_KEY,
    maxRetries: options.maxRetries ?? 0,
    defaultHeaders: options.headers,
  });
}

/** The official `@anthropic-ai/sdk` client; it appends `/v1/messages` itself. */
export function anthropicClient(origin: string, options: ClientOptions = {}): Anthropic {
  return new Anthropic({
    baseURL: origin,
    apiKey: options.apiKey ?? TEST_API_KEY,
    maxRetries: options.maxRetries ?? 0,
    defaultHeaders: options.headers,
  });
}

/**
 * The AI SDK's OpenAI provider. Its default `provider(model)` speaks the Responses API; `.chat(model)`
 * speaks chat completions. Retries are set per call (`maxRetries` of `generateText` / `streamText`).
 */
export function aiSdkOpenAI(origin: string, options: ClientOptions = {}) {
  return createOpenAI({
    baseURL: `${origin}/v1`,
    apiKey: options.apiKey ?? TEST_API_KEY,
    headers: options.headers,
  });
}

/** The AI SDK's OpenAI-compatible provider (chat completions, with stream usage requested). */
export function aiSdkCompatible(origin: string, options: ClientOptions = {}) {
  return createOpenAICompatible({
    name: 'slipstream-test',
    baseURL: `${origin}/v1`,
    apiKey: options.apiKey ?? TEST_API_KEY,
    headers: options.headers,
    includeUsage: true,
  });
}

/** LangChain's `ChatOpenAI` (chat completions for non-OpenAI model names). */
export function langchainChat(origin: string, model: string, options: ClientOptions = {}): ChatOpenAI {
  return new ChatOpenAI({
    model,
    apiKey: options.apiKey ?? TEST_API_KEY,
    maxRetries: options.maxRetries ?? 0,
    configuration: { baseURL: `${origin}/v1`, defaultHeaders: options.headers },
  });
}
