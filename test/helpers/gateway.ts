// Starts an in-process gateway from YAML text on ephemeral loopback ports, with logs silenced.
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { request } from 'undici';
import { parseConfig } from '../../src/config/load.js';
import { createGateway } from '../../src/gateway.js';
import type { Gateway } from '../../src/gateway.js';

export interface RunningGateway {
  gateway: Gateway;
  url: string;
  adminUrl: string;
  close(): Promise<void>;
}

/** `yaml` holds upstreams and routes; listeners default to 127.0.0.1 port 0 unless the text sets them. */
export async function startGateway(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<RunningGateway> {
  const listeners = /^server:/m.test(yaml) ? '' : 'server: { listen: "127.0.0.1:0" }\n';
  const admin = /^admin:/m.test(yaml) ? '' : 'admin: { listen: "127.0.0.1:0" }\n';
  const config = parseConfig(listeners + admin + yaml, 'test.yaml', env);
  const gateway = await createGateway(config, { logger: pino({ level: 'silent' }) });
  const { url, adminUrl } = await gateway.listen();
  // This helper always binds the admin listener (GatewayOptions.admin defaults to true).
  return { gateway, url, adminUrl: adminUrl!, close: () => gateway.close() };
}

const MCP_EMULATOR = fileURLToPath(new URL('../../emulators/mcp-server.ts', import.meta.url));

/**
 * An `mcp.servers` entry, as a one-line YAML flow mapping: the MCP emulator over stdio (run from its
 * TypeScript source), one process unless `pool` says otherwise, plus any `extra` keys.
 */
export function emulatorServer(options: { pool?: string; extra?: string } = {}): string {
  const args = JSON.stringify(['--import', 'tsx', MCP_EMULATOR]);
  const extra = options.extra === undefined ? '' : `, ${options.extra}`;
  return `{ type: stdio, command: ${JSON.stringify(process.execPath)}, args: ${args}, pool: ${options.pool ?? '{ min: 1, max: 1 }'}${extra} }`;
}

/** One request; returns status, headers and the parsed JSON body (or text when not JSON). */
export async function call(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: any }> {
  const response = await request(url, {
    method: (options.method ?? 'GET') as 'GET',
    headers: options.headers,
    body: options.body,
  });
  const text = await response.body.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.statusCode, headers: response.headers, body };
}
