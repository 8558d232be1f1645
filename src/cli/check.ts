// `slipstream check`: validates a config file and prints what it would run.
import type { Command } from 'commander';
import type { Config } from '../config/schema.js';
import { loadConfigOrReport } from './config-file.js';

/** Registers `check -c FILE`: exit 0 and a summary when valid, exit 2 and located problems when not. */
export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('validate a config file and summarise its upstreams and routes')
    .option('-c, --config <file>', 'config file', 'slipstream.yaml')
    .action(async (options: { config: string }) => {
      const loaded = await loadConfigOrReport(options.config);
      if (loaded !== undefined) process.stdout.write(summarise(options.config, loaded.config));
    });
}

/** A plain-text summary with no secrets: header values and credentials are never printed. */
export function summarise(file: string, config: Config): string {
  const lines = [
    `${file}: ok`,
    '',
    `listen ${config.server.listen.host}:${config.server.listen.port}, admin ${config.admin.listen.host}:${config.admin.listen.port}`,
    '',
    'upstreams:',
  ];
  for (const [name, u] of Object.entries(config.upstreams)) {
    const extras = [
      `${u.pool.connections} connections`,
      u.pool.http2 ? 'http2' : 'http/1.1',
      `connect ${u.timeouts.connect}ms`,
      `first byte ${u.timeouts.firstByte}ms`,
      u.auth === undefined ? undefined : `auth ${u.auth.type}`,
      Object.keys(u.headers).length > 0 ? `headers: ${Object.keys(u.headers).join(', ')}` : undefined,
    ].filter((x) => x !== undefined);
    lines.push(`  ${name}  ${new URL(u.url).origin}  (${extras.join(', ')})`);
  }
  lines.push('', 'routes:');
  for (const r of config.routes) {
    const methods = r.match.methods?.join(',') ?? '*';
    const host = r.match.host === undefined ? '' : ` host ${r.match.host}`;
    const policies = [
      `timeout ${r.timeout}ms`,
      r.retry === false ? 'no retry' : `retry x${r.retry.attempts}`,
      r.breaker === false ? 'no breaker' : `breaker ${r.breaker.mode}`,
      r.bulkhead === false ? 'no bulkhead' : `bulkhead ${r.bulkhead.maxConcurrent}+${r.bulkhead.queue}`,
      r.hedge === undefined ? undefined : 'hedge',
      r.idempotent ? 'idempotent' : undefined,
    ].filter((x) => x !== undefined);
    const rewrite = r.rewrite === undefined ? '' : ` (rewrite to ${r.rewrite})`;
    lines.push(
      `  ${r.name ?? r.match.prefix}  ${methods} ${r.match.prefix}${host} -> ${r.upstream}${rewrite}  [${policies.join(', ')}]`,
    );
  }
  return `${lines.join('\n')}\n`;
}
