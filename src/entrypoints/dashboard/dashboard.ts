// The live dashboard on the admin listener: GET /dashboard (one self-contained page) and GET /dashboard/events (its feed).
import { GatewayError } from '../../errors.js';
import type { Reply } from '../../pipeline/types.js';
import { written } from '../../server/exchange.js';
import type { Endpoint, Exchange } from '../../server/exchange.js';
import type { EndpointRoute } from '../../server/router.js';
import type { LiveStats } from '../../telemetry/live/live-stats.js';
import { FEED_HEADERS, feedHub } from './feeds.js';
import { dashboardPage } from './page.js';
import { sessionCookies } from './session-cookie.js';

export interface DashboardOptions {
  live: LiveStats;
  /** Feeds open at once (pages open at once); more get 503. */
  maxFeeds: number;
  /** The admin token; undefined when the admin listener is on loopback and open. */
  token: string | undefined;
  /** True when the request carries `Authorization: Bearer <admin.token>`. */
  bearer: (x: Exchange) => boolean;
  /** True when `given` is the admin token (compared in constant time). */
  isToken: (given: string) => boolean;
}

const PATH = '/dashboard';

/**
 * The dashboard's two routes, protected as `/metrics` is. Without `admin.token` the listener is on loopback
 * (a config rule) and the dashboard answers only requests whose `Host` is a loopback name, so a web page
 * cannot reach it through DNS rebinding (403 otherwise). With a token, a request needs either
 * `Authorization: Bearer <token>` (curl, scripts) or the session cookie. A browser cannot put a header on
 * a page it navigates to, nor on an `EventSource`, so `GET /dashboard?token=<token>` trades the token
 * once for a signed cookie (`session-cookie.ts`: an hour, HttpOnly, SameSite=Strict, sent only under
 * `/dashboard`) and redirects (303) to `/dashboard`, taking the token out of the address bar and history.
 * The token never sits in the page, in its script, or in the feed's URL; the cookie never authorizes
 * `/metrics` or a purge. A feed opened with the cookie ends when the cookie does (an `expired` event).
 * Anything else is 401 `GW_UNAUTHORIZED`.
 */
export function dashboardRoutes(options: DashboardOptions): EndpointRoute[] {
  const page = dashboardPage();
  const hub = feedHub({ live: options.live, maxFeeds: options.maxFeeds });
  const token = options.token;
  const cookies = token === undefined ? undefined : sessionCookies({ token, path: PATH });

  /** Resolves who may look; returns when a cookie session ends (epoch ms), if it was a cookie. */
  const access = (x: Exchange): { until?: number } => {
    if (cookies === undefined) {
      if (!loopbackHost(x.req.headers.host)) {
        throw new GatewayError(
          'GW_FORBIDDEN',
          'without admin.token the dashboard answers loopback host names only (127.0.0.1, localhost, [::1])',
        );
      }
      return {};
    }
    if (options.bearer(x)) return {};
    const until = cookies.verify(x.req.headers.cookie);
    if (until !== undefined) return { until };
    throw new GatewayError(
      'GW_UNAUTHORIZED',
      `open ${PATH}?token=<admin.token> once (it sets a session cookie), or send "Authorization: Bearer <admin.token>"`,
    );
  };

  const pageEndpoint: Endpoint = {
    route: 'admin',
    async handle(x) {
      const given = new URLSearchParams(x.query.slice(1)).get('token');
      if (cookies !== undefined && given !== null) {
        if (!options.isToken(given)) throw new GatewayError('GW_UNAUTHORIZED', 'wrong admin token');
        const session = cookies.issue();
        // RFC 9110 §15.4.4: 303 makes the browser GET the target, so the token leaves the address bar.
        return {
          status: 303,
          headers: { location: PATH, 'set-cookie': session.header, ...NO_STORE, 'content-length': '0' },
          body: null,
        };
      }
      access(x);
      return pageReply(page.html, page.csp);
    },
  };
  const eventsEndpoint: Endpoint = {
    route: 'admin',
    async handle(x) {
      const { until } = access(x);
      hub.admit();
      x.res.writeHead(200, FEED_HEADERS);
      x.onShutdown(hub.open(x.res, until));
      return written(x.res);
    },
  };
  return [
    { path: PATH, exact: true, methods: ['GET'], endpoint: pageEndpoint },
    { path: `${PATH}/events`, exact: true, methods: ['GET'], endpoint: eventsEndpoint },
  ];
}

const NO_STORE = { 'cache-control': 'no-store' };

function pageReply(html: Buffer, csp: string): Reply {
  return {
    status: 200,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-length': String(html.length),
      'content-security-policy': csp,
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      ...NO_STORE,
    },
    body: html,
  };
}

/** True when the `Host` header names this machine's loopback (with any port). */
function loopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}
