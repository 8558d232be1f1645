// The dashboard page: reads the gateway's live feed (server-sent events) and draws its tables and uPlot charts.
'use strict';

(() => {
  /** Points kept per chart: five minutes at one frame a second. */
  const HISTORY = 300;
  /** Lines per chart: the busiest ones. */
  const MAX_SERIES = 6;
  /** Line histories kept per chart (labels seen); more are not drawn. */
  const MAX_TRACKED = 64;
  const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2'];
  const CHART_HEIGHT = 180;

  const byId = (id) => document.getElementById(id);

  // ---- formatting (every value shown is also kept raw in `data-v` on its cell)
  const int = (n) => n.toLocaleString('en-US');
  const ms = (value) =>
    value === undefined
      ? '–'
      : value < 10
        ? value.toFixed(2)
        : value < 100
          ? value.toFixed(1)
          : int(Math.round(value));
  const perSecond = (value) =>
    value === undefined ? '–' : value < 10 ? value.toFixed(1) : int(Math.round(value));
  const percent = (part, whole) => (whole === 0 ? undefined : Math.round((1000 * part) / whole) / 10);
  const percentText = (value) => (value === undefined ? '–' : `${value} %`);
  const ago = (msSpan) => {
    const s = Math.max(0, Math.round(msSpan / 1000));
    if (s < 120) return `${s} s`;
    if (s < 7200) return `${Math.round(s / 60)} min`;
    return `${Math.round(s / 3600)} h`;
  };

  // ---- tables: rebuilt whole each frame with DOM calls (labels are text, never markup)
  /**
   * @param {string} id the table
   * @param {Array<{data: Record<string, string>, cells: Array<[string, unknown, string?]>}>} rows
   */
  function fill(id, rows) {
    const table = byId(id);
    const body = document.createElement('tbody');
    if (rows.length === 0) {
      const td = body.insertRow().insertCell();
      td.parentElement.className = 'empty';
      td.colSpan = table.tHead.rows[0].cells.length;
      td.textContent = 'nothing yet';
    }
    for (const row of rows) {
      const tr = body.insertRow();
      for (const [key, value] of Object.entries(row.data)) tr.dataset[key] = value;
      for (const [key, value, text] of row.cells) {
        const td = tr.insertCell();
        td.dataset.k = key;
        if (value !== undefined) td.dataset.v = String(value);
        td.textContent =
          text ?? (value === undefined ? '–' : typeof value === 'number' ? int(value) : String(value));
      }
    }
    table.tBodies[0].replaceWith(body);
  }

  // ---- charts: one uPlot per figure, rebuilt when the set of lines changes
  function lineChart(id) {
    const el = byId(id);
    const times = [];
    /** label -> values, aligned with `times` */
    const lines = new Map();
    let plot;
    let shown = '';
    const none = () => {
      plot?.destroy();
      plot = undefined;
      shown = '';
      el.replaceChildren(
        Object.assign(document.createElement('div'), { className: 'none', textContent: 'no data yet' }),
      );
    };
    none();
    window.addEventListener('resize', () => plot?.setSize({ width: el.clientWidth, height: CHART_HEIGHT }));
    return {
      /** @param {number} t epoch ms @param {Map<string, number|undefined>} values @param {string[]} labels to draw */
      push(t, values, labels) {
        times.push(t / 1000);
        for (const label of values.keys()) {
          if (!lines.has(label) && lines.size < MAX_TRACKED)
            lines.set(
              label,
              times.slice(1).map(() => null),
            );
        }
        for (const [label, points] of lines) points.push(values.get(label) ?? null);
        if (times.length > HISTORY) {
          times.shift();
          for (const points of lines.values()) points.shift();
        }
        const drawn = labels.filter((label) => lines.has(label)).slice(0, MAX_SERIES);
        if (drawn.length === 0) return none();
        const data = [times, ...drawn.map((label) => lines.get(label))];
        const key = drawn.join('\u0000');
        if (key === shown) return plot.setData(data);
        plot?.destroy();
        el.replaceChildren();
        shown = key;
        plot = new uPlot(
          {
            width: el.clientWidth || 400,
            height: CHART_HEIGHT,
            scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
            series: [
              {},
              ...drawn.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 1.5 })),
            ],
            axes: [{}, { size: 56 }],
            cursor: { drag: { x: false, y: false } },
            legend: { live: false },
          },
          data,
          el,
        );
      },
    };
  }

  const charts = {
    rate: lineChart('chart-rate'),
    p50: lineChart('chart-p50'),
    p99: lineChart('chart-p99'),
    errors: lineChart('chart-errors'),
    ttfb: lineChart('chart-ttfb'),
    chunks: lineChart('chart-chunks'),
  };

  // ---- one frame
  let previous; // the frame before, for rates
  let frames = 0;

  function render(message) {
    const f = message.frame;
    // A new `since` means counting began again (the gateway restarted, or every page was closed).
    if (previous !== undefined && previous.since !== f.since) previous = undefined;
    const dt = previous === undefined ? 0 : (f.t - previous.t) / 1000;
    const rate = (now, before) => (dt > 0 ? Math.max(0, (now - (before ?? 0)) / dt) : undefined);

    frames++;
    setStatus('live', 'live');
    byId('worker').textContent = String(f.worker);
    byId('since').textContent = new Date(f.since).toLocaleTimeString();
    setValue('frames', frames);
    setValue('dropped', message.dropped);

    const routes = Object.entries(f.routes).sort((a, b) => b[1].requests - a[1].requests);
    const served = routes.filter(([, r]) => r.requests > 0);
    const rates = new Map(
      served.map(([name, r]) => [name, rate(r.requests, previous?.routes[name]?.requests)]),
    );
    fill(
      'routes',
      served.map(([name, r]) => {
        const errors = Object.values(r.errors).reduce((sum, n) => sum + n, 0);
        return {
          data: { route: name },
          cells: [
            ['name', name],
            ['requests', r.requests],
            ['rate', rates.get(name), perSecond(rates.get(name))],
            ['p50', r.latency.total?.p50, ms(r.latency.total?.p50)],
            ['p99', r.latency.total?.p99, ms(r.latency.total?.p99)],
            ['errors', errors],
            ['errorRatio', percent(errors, r.requests), percentText(percent(errors, r.requests))],
          ],
        };
      }),
    );
    charts.rate.push(
      f.t,
      rates,
      served.map(([name]) => name),
    );
    const busiest = served.map(([name]) => name);
    charts.p50.push(f.t, new Map(served.map(([name, r]) => [name, r.latency.window?.p50])), busiest);
    charts.p99.push(f.t, new Map(served.map(([name, r]) => [name, r.latency.window?.p99])), busiest);

    const errorRows = [];
    const codeTotals = new Map();
    const codeTotalsBefore = new Map();
    for (const [name, r] of routes) {
      for (const [code, count] of Object.entries(r.errors)) {
        const before = previous?.routes[name]?.errors[code];
        errorRows.push({
          data: { route: name, code },
          cells: [
            ['name', name],
            ['code', code],
            ['count', count],
            ['rate', rate(count, before), perSecond(rate(count, before))],
          ],
        });
        codeTotals.set(code, (codeTotals.get(code) ?? 0) + count);
        codeTotalsBefore.set(code, (codeTotalsBefore.get(code) ?? 0) + (before ?? 0));
      }
    }
    fill('errors', errorRows);
    const codes = [...codeTotals.keys()].sort((a, b) => codeTotals.get(b) - codeTotals.get(a));
    charts.errors.push(
      f.t,
      new Map(codes.map((code) => [code, rate(codeTotals.get(code), codeTotalsBefore.get(code))])),
      codes,
    );

    const sum = (o) => Object.values(o).reduce((total, n) => total + n, 0);
    fill(
      'cache-routes',
      routes
        .filter(([, r]) => sum(r.cache) + r.coalesced + r.batched.calls > 0)
        .map(([name, r]) => ({
          data: { route: name },
          cells: [
            ['name', name],
            ['hit', r.cache.hit],
            ['stale', r.cache.stale],
            ['miss', r.cache.miss],
            ['bypass', r.cache.bypass],
            [
              'hitRatio',
              percent(r.cache.hit + r.cache.stale, r.cache.hit + r.cache.stale + r.cache.miss),
              percentText(percent(r.cache.hit + r.cache.stale, r.cache.hit + r.cache.stale + r.cache.miss)),
            ],
            ['coalesced', r.coalesced],
            ['batchedCalls', r.batched.calls],
            ['bulkCalls', r.batched.bulk],
          ],
        })),
    );

    const order = { open: 0, 'half-open': 1, closed: 2 };
    fill(
      'breakers',
      [...f.state.breakers]
        .sort((a, b) => order[a.state] - order[b.state] || a.name.localeCompare(b.name))
        .map((b) => ({
          data: { name: b.name },
          cells: [
            ['name', b.name],
            ['state', b.state],
            ['for', f.t - b.since, ago(f.t - b.since)],
            ['transitions', b.transitions],
          ],
        })),
    );
    fill(
      'bulkheads',
      routes
        .filter(([, r]) => r.bulkhead.queueFull + r.bulkhead.queueTimeout > 0)
        .map(([name, r]) => ({
          data: { route: name },
          cells: [
            ['name', name],
            ['queueFull', r.bulkhead.queueFull],
            ['queueTimeout', r.bulkhead.queueTimeout],
          ],
        })),
    );
    fill(
      'rate-limits',
      routes
        .filter(([, r]) => r.rateLimit.principal + r.rateLimit.ip > 0)
        .map(([name, r]) => ({
          data: { route: name },
          cells: [
            ['name', name],
            ['principal', r.rateLimit.principal],
            ['ip', r.rateLimit.ip],
          ],
        })),
    );
    fill(
      'rate-limited',
      f.rateLimited.map((p) => ({
        data: { principal: p.principal },
        cells: [
          ['name', p.principal],
          ['rejections', p.rejections],
        ],
      })),
    );

    const mcp = f.state.mcp;
    byId('mcp').hidden = mcp === undefined;
    if (mcp !== undefined) {
      fill(
        'mcp-servers',
        mcp.servers.map((s) => ({
          data: { server: s.server },
          cells: [
            ['name', s.server],
            ['processes', s.processes],
            ['ready', s.ready],
            ['inFlight', s.inFlight],
            ['restarts', s.restarts],
            [
              'lastExit',
              s.lastExit?.reason,
              s.lastExit === undefined ? 'none' : `${s.lastExit.reason}, ${ago(f.t - s.lastExit.at)} ago`,
            ],
            ['down', s.down, s.down ?? 'no'],
          ],
        })),
      );
      fill(
        'mcp-sessions',
        mcp.sessions.map((s) => ({
          data: { era: s.era },
          cells: [
            ['name', s.era],
            ['sessions', s.sessions],
          ],
        })),
      );
    }

    const llm = f.state.llm;
    byId('llm').hidden = llm === undefined;
    if (llm !== undefined) {
      const chunkRates = new Map();
      const ttfb = new Map();
      fill(
        'llm-providers',
        llm.providers.map((p) => {
          const live = f.providers[p.name];
          const chunkRate =
            live === undefined ? undefined : rate(live.chunks, previous?.providers[p.name]?.chunks);
          chunkRates.set(p.name, chunkRate);
          ttfb.set(`${p.name} p50`, live?.firstByte.window?.p50);
          ttfb.set(`${p.name} p99`, live?.firstByte.window?.p99);
          return {
            data: { provider: p.name },
            cells: [
              ['name', p.name],
              ['openStreams', p.openStreams],
              ['complete', live?.streams.complete ?? 0],
              ['aborted', live?.streams.aborted ?? 0],
              ['error', live?.streams.error ?? 0],
              ['chunks', live?.chunks ?? 0],
              ['chunkRate', chunkRate, perSecond(chunkRate)],
              ['ttfbP50', live?.firstByte.total?.p50, ms(live?.firstByte.total?.p50)],
              ['ttfbP99', live?.firstByte.total?.p99, ms(live?.firstByte.total?.p99)],
            ],
          };
        }),
      );
      charts.chunks.push(f.t, chunkRates, [...chunkRates.keys()]);
      charts.ttfb.push(f.t, ttfb, [...ttfb.keys()]);
      const t = llm.transcripts;
      fill(
        'transcripts',
        t === undefined
          ? []
          : [
              {
                data: {},
                cells: [
                  ['queueDepth', t.queueDepth],
                  ['rowsWritten', t.rowsWritten],
                  ['storeErrors', t.storeErrors],
                  ['dropped', t.dropped],
                ],
              },
            ],
      );
    }

    byId('fanout').hidden = f.state.groups.length === 0;
    const none = { answered: 0, failed: 0, timedOut: 0, skipped: 0, cancelled: 0, latency: {} };
    fill(
      'fanout-members',
      f.state.groups.flatMap((g) =>
        g.members.map((member) => {
          const m = f.groups[g.name]?.members[member] ?? none;
          return {
            data: { group: g.name, member },
            cells: [
              ['name', g.name],
              ['member', member],
              ['answered', m.answered],
              ['failed', m.failed],
              ['timedOut', m.timedOut],
              ['skipped', m.skipped],
              ['cancelled', m.cancelled],
              ['p50', m.latency.total?.p50, ms(m.latency.total?.p50)],
              ['p99', m.latency.total?.p99, ms(m.latency.total?.p99)],
            ],
          };
        }),
      ),
    );

    previous = f;
  }

  function setValue(id, value) {
    const el = byId(id);
    el.dataset.v = String(value);
    el.textContent = int(value);
  }

  function setStatus(state, text) {
    const el = byId('status');
    el.dataset.state = state;
    el.textContent = text;
  }

  // ---- the feed: same origin, the session cookie (if any) sent by the browser itself
  const source = new EventSource(`${location.pathname.replace(/\/$/, '')}/events`);
  source.onmessage = (event) => render(JSON.parse(event.data));
  source.addEventListener('expired', () => {
    source.close();
    setStatus('expired', 'signed out: the session ended (open /dashboard?token=… again)');
  });
  source.onerror = () => {
    // EventSource reconnects by itself after a network error; it gives up on an HTTP error (401, 503).
    if (source.readyState === EventSource.CLOSED) setStatus('closed', 'feed refused: reload the page');
    else setStatus('reconnecting', 'reconnecting…');
  };
})();
