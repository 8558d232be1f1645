// OAuth2 client-credentials token provider: one token shared by all calls, refreshed before it expires.
import { request } from 'undici';
import type { OAuth2Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { events, publish } from '../telemetry/events.js';
import type { TokenRefreshEvent } from '../telemetry/events.js';

interface Token {
  value: string;
  /** Epoch ms when the token stops being valid. */
  expiresAt: number;
  /** Epoch ms after which a background refresh starts. */
  refreshAt: number;
}

type Trigger = TokenRefreshEvent['trigger'];

/** Lifetime assumed when the token endpoint omits `expires_in` (RFC 6749 §5.1 makes it optional). */
const DEFAULT_LIFETIME_S = 3600;
/** After a failed background refresh, wait this long before trying again (the old token is still valid). */
const RETRY_AFTER_FAILURE_MS = 1000;

/**
 * Fetches an OAuth2 access token with the client-credentials grant (RFC 6749 §4.4) and caches it.
 * Calls never wait while a valid token is cached: shortly before expiry (`refreshBefore`, or half the
 * lifetime for short-lived tokens) one background refresh runs while callers keep using the old token.
 * Only the very first call, or a call after expiry, waits, and concurrent waiters share one request.
 */
export class OAuth2TokenProvider {
  private current: Token | undefined;
  private refreshing: Promise<string> | undefined;
  private lastFailureAt = -Infinity;

  constructor(
    private readonly upstream: string,
    private readonly config: OAuth2Config,
    private readonly now: () => number = Date.now,
  ) {}

  /** Returns a valid access token. Throws `GW_UPSTREAM_AUTH_FAILED` when none can be had. */
  async token(): Promise<string> {
    const token = this.current;
    const now = this.now();
    if (token !== undefined && now < token.expiresAt) {
      if (now >= token.refreshAt && now - this.lastFailureAt >= RETRY_AFTER_FAILURE_MS) {
        this.refresh('expiring').catch(() => {}); // failure is published; the old token is still good
      }
      return token.value;
    }
    return this.refresh(token === undefined ? 'initial' : 'expiring');
  }

  /**
   * Called when the upstream answered 401 to `rejected`: drops that token and returns a fresh one.
   * If another call already replaced it, the newer token is returned without a second refresh.
   */
  async renew(rejected: string): Promise<string> {
    if (this.current !== undefined && this.current.value !== rejected) return this.current.value;
    this.current = undefined;
    return this.refresh('unauthorized');
  }

  private refresh(trigger: Trigger): Promise<string> {
    this.refreshing ??= this.fetchToken(trigger).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async fetchToken(trigger: Trigger): Promise<string> {
    const started = performance.now();
    try {
      const token = await this.requestToken();
      this.current = token;
      publish(events.tokenRefresh, {
        upstream: this.upstream,
        ok: true,
        durationMs: performance.now() - started,
        trigger,
      });
      return token.value;
    } catch (error) {
      this.lastFailureAt = this.now();
      publish(events.tokenRefresh, {
        upstream: this.upstream,
        ok: false,
        durationMs: performance.now() - started,
        trigger,
      });
      throw error;
    }
  }

  private async requestToken(): Promise<Token> {
    const { tokenUrl, clientId, clientSecret, scope, clientAuth, refreshBefore, timeout } = this.config;
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (scope !== undefined) form.set('scope', scope);
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    if (clientAuth === 'basic') {
      // RFC 6749 §2.3.1: client id and secret are form-encoded before Basic encoding.
      const basic = `${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`;
      headers.authorization = `Basic ${Buffer.from(basic).toString('base64')}`;
    } else {
      form.set('client_id', clientId);
      form.set('client_secret', clientSecret);
    }

    let status: number;
    let payload: unknown;
    try {
      const response = await request(tokenUrl, {
        method: 'POST',
        headers,
        body: form.toString(),
        signal: AbortSignal.timeout(timeout),
      });
      status = response.statusCode;
      payload = await response.body.json().catch(() => undefined);
    } catch (error) {
      throw this.failure(`token endpoint unreachable: ${(error as Error).message}`, error);
    }
    const body = (payload ?? {}) as { access_token?: unknown; expires_in?: unknown; error?: unknown };
    if (status !== 200 || typeof body.access_token !== 'string') {
      const reason = typeof body.error === 'string' ? ` (${body.error})` : '';
      throw this.failure(`token endpoint answered ${status}${reason}`);
    }
    const lifetimeMs = (typeof body.expires_in === 'number' ? body.expires_in : DEFAULT_LIFETIME_S) * 1000;
    const issuedAt = this.now();
    return {
      value: body.access_token,
      expiresAt: issuedAt + lifetimeMs,
      refreshAt: issuedAt + lifetimeMs - Math.min(refreshBefore, lifetimeMs / 2),
    };
  }

  private failure(message: string, cause?: unknown): GatewayError {
    return new GatewayError('GW_UPSTREAM_AUTH_FAILED', `upstream "${this.upstream}": ${message}`, { cause });
  }
}
