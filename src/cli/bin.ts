// Process entry for the CLI (bin/slipstream.js loads the compiled copy; tests run this file through tsx).
import { main } from './main.js';

main(process.argv).catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
