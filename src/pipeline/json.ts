// Bounded JSON: client bodies are checked for UTF-8 and nesting before anything parses or recurses into them.
import { isUtf8 } from 'node:buffer';
import { GatewayError } from '../errors.js';

/** Deepest JSON nesting accepted by default: deeper bodies get 400 before anything recurses into them. */
export const MAX_JSON_DEPTH = 64;

/**
 * Parses a JSON body. `GW_BAD_REQUEST` when it is not valid UTF-8 (RFC 8259 §8.1: never silently replaced
 * with U+FFFD), nests deeper than `maxDepth` (checked by a byte scan before parsing, so that nothing later —
 * a canonical cache key, a schema validator — recurses into a hostile body), or is not JSON.
 */
export function parseJson(body: Buffer, maxDepth = MAX_JSON_DEPTH): unknown {
  if (!isUtf8(body)) throw new GatewayError('GW_BAD_REQUEST', 'request body is not valid UTF-8');
  if (nestingExceeds(body, maxDepth)) {
    throw new GatewayError('GW_BAD_REQUEST', `request body nests deeper than ${maxDepth} levels`, {
      data: { maxDepth },
    });
  }
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new GatewayError('GW_BAD_REQUEST', `request body is not valid JSON: ${(error as Error).message}`);
  }
}

/** Whether JSON text opens more than `max` arrays or objects at once (strings skipped, escapes honoured). */
export function nestingExceeds(body: Buffer, max: number): boolean {
  if (body.length <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}
