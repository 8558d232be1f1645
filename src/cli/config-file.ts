// Loads the config for a CLI command, printing located problems and exiting 2 when it is invalid.
import { ConfigError, parseConfig, readConfigText } from '../config/load.js';
import type { Config } from '../config/schema.js';

/** Exit code for a config that does not validate (the process never starts serving). */
export const EXIT_CONFIG_INVALID = 2;

/**
 * Returns the validated config and the text it came from, or prints every problem to stderr, sets exit
 * code 2 and returns undefined.
 */
export async function loadConfigOrReport(
  file: string,
): Promise<{ config: Config; text: string } | undefined> {
  try {
    const text = await readConfigText(file);
    return { config: parseConfig(text, file), text };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exitCode = EXIT_CONFIG_INVALID;
    return undefined;
  }
}
