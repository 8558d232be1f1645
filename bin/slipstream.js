#!/usr/bin/env node
// Entry point for the `slipstream` command: runs the compiled CLI (built by `npm ci` / `npm run build`).
import '../dist/src/cli/bin.js';
