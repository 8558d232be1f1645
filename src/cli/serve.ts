// `slipstream serve`: runs the gateway until SIGTERM/SIGINT, then drains gracefully.
import type { Command } from 'commander';
import { createGateway } from '../gateway.js';
import { loadConfigOrReport } from './config-file.js';

/** Registers `serve -c FILE`. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the gateway')
    .option('-c, --config <file>', 'config file', 'slipstream.yaml')
    .action(async (options: { config: string }) => {
      const config = await loadConfigOrReport(options.config);
      if (config === undefined) return;
      const gateway = createGateway(config);
      let bound: { url: string; adminUrl: string };
      try {
        bound = await gateway.listen();
      } catch (error) {
        // One JSON line a log pipeline can read (a port in use, say), not a stack trace on stderr.
        gateway.logger.fatal({ err: error }, 'slipstream could not start');
        await gateway.close().catch(() => {});
        process.exitCode = 1;
        return;
      }
      const { url, adminUrl } = bound;
      // Always printed, whatever the log level: scripts and tests wait for this line.
      process.stdout.write(`${JSON.stringify({ event: 'listening', url, adminUrl })}\n`);

      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) {
          gateway.logger.warn({ signal }, 'second signal: exiting without draining');
          process.exit(1);
        }
        stopping = true;
        gateway.logger.info({ signal, graceMs: config.server.shutdownGrace }, 'draining');
        gateway.close().then(
          () => gateway.logger.info('stopped'),
          (error: unknown) => {
            gateway.logger.error({ err: error }, 'shutdown failed');
            process.exitCode = 1;
          },
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
}
