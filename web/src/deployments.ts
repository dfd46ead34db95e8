// #/deployments: what the server serves (GET /api/2.0/keel/serving); request
// rate and latency percentiles over time from the stored monitoring windows'
// operational figures (GET /api/2.0/keel/monitor/windows, server-side
// aggregates of the prediction log: fields=operational, one window length,
// 30 days paged back with before_id); the error rate from GET /metrics
// (keel_http_requests_total by code: the share since the server started, and
// sampled every few seconds while the page is open for a live chart) and over
// time from the store (GET /api/2.0/keel/serving/requests: counts of every
// replica per minute, summed by the server per step); the
// health of the prediction log and of the monitoring passes (GET /metrics);
// request counts and latency per endpoint and model (GET /metrics).

import { api, type StoredWindow, windowHistory } from "./api";
import { type Chart, lineChart } from "./charts";
import { badge, button, card, type Child, errorText, h, note, pageHeader, replace, type Tone } from "./dom";
import { fmtLatency, fmtNum, fmtPercent, fmtRelative, fmtSpan, fmtTime } from "./format";
import { href, type PageContext } from "./router";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text exposition -> samples (comments and malformed lines skipped). */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split("\n")) {
    if (!raw || raw.startsWith("#")) continue;
    const m = line.exec(raw.trim());
    if (!m || !m[1] || m[3] === undefined) continue;
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const l of m[2].matchAll(label)) {
        if (l[1] !== undefined && l[2] !== undefined) labels[l[1]] = l[2].replace(/\\(.)/g, (_s, c: string) => (c === "n" ? "\n" : c));
      }
    }
    const value = m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : Number(m[3]);
    out.push({ name: m[1], labels, value });
  }
  return out;
}

/** The sum of a metric's samples (null when the server does not export it). */
function total(samples: Sample[], name: string, where: (s: Sample) => boolean = () => true): number | null {
  let sum: number | null = null;
  for (const s of samples) {
    if (s.name === name && where(s)) sum = (sum ?? 0) + s.value;
  }
  return sum;
}

interface Row {
  endpoint: string;
  model: string;
  version: string;
  requests: number;
  errors: number;
}

interface Latency {
  count: number;
  sum: number;
  buckets: Array<[number, number]>; // (le, cumulative count)
}

/** Quantile from cumulative histogram buckets, interpolated within a bucket (as Prometheus does). */
function quantile(q: number, buckets: Array<[number, number]>): number {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const count = sorted[sorted.length - 1]?.[1] ?? 0;
  if (count === 0) return NaN;
  const rank = q * count;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, c] of sorted) {
    if (c >= rank) {
      if (!Number.isFinite(le)) return prevLe;
      const inBucket = c - prevCount;
      return inBucket === 0 ? le : prevLe + ((le - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = le;
    prevCount = c;
  }
  return prevLe;
}

const SERVING = /^\/(predict|invocations|v2\/models|labels)/;
const HOUR_MS = 3600000;
const TRAFFIC_DAYS = 30; // traffic over time: 30 days of the chosen length,
const TRAFFIC_MAX = 1440; // at most this many windows (every version)
const SAMPLE_CHOICES = [1, 5, 15, 60]; // seconds between live samples
/** Error history ranges: (label, range, step). At most 720 steps each. */
const HISTORY_RANGES: Array<[string, number, number]> = [
  ["last hour", HOUR_MS, 60000],
  ["last 24 hours", 24 * HOUR_MS, 5 * 60000],
  ["last 7 days", 7 * 24 * HOUR_MS, HOUR_MS],
  ["last 30 days", 30 * 24 * HOUR_MS, 6 * HOUR_MS],
];
const LIVE_POINTS = 120;

/** Request counters summed over the endpoints in view, at one moment. */
interface Counters {
  t: number;
  requests: number;
  e4xx: number;
  e5xx: number;
}

function countersOf(samples: Sample[], inView: (endpoint: string) => boolean, t: number): Counters {
  const c: Counters = { t, requests: 0, e4xx: 0, e5xx: 0 };
  for (const s of samples) {
    if (s.name !== "keel_http_requests_total" || !inView(s.labels["endpoint"] ?? "")) continue;
    const code = Number(s.labels["code"] ?? 0);
    c.requests += s.value;
    if (code >= 500) c.e5xx += s.value;
    else if (code >= 400) c.e4xx += s.value;
  }
  return c;
}

/** One point of traffic over time: the windows of one length ending at one pass. */
interface TrafficPoint {
  to_ms: number;
  predictions: number;
  rate: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  version: string; // the version that answered most (its latency is shown)
}

/** Windows of one length -> points: rates summed over versions; latency of the version with most predictions. */
export function trafficSeries(windows: StoredWindow[], span: number): TrafficPoint[] {
  const byEnd = new Map<number, StoredWindow[]>();
  for (const w of windows) {
    if (w.to_ms - w.from_ms !== span || !w.operational) continue;
    const list = byEnd.get(w.to_ms) ?? [];
    list.push(w);
    byEnd.set(w.to_ms, list);
  }
  const out: TrafficPoint[] = [];
  for (const [to, list] of byEnd) {
    let predictions = 0;
    let rate: number | null = null;
    let top: StoredWindow | null = null;
    for (const w of list) {
      const op = w.operational;
      if (!op) continue;
      predictions += op.predictions;
      if (op.rate_per_s !== null) rate = (rate ?? 0) + op.rate_per_s;
      if (!top || (top.operational?.predictions ?? 0) < op.predictions) top = w;
    }
    const lat = top?.operational?.latency_us;
    out.push({ to_ms: to, predictions, rate, p50: lat?.p50 ?? null, p95: lat?.p95 ?? null, p99: lat?.p99 ?? null, version: top?.version ?? "" });
  }
  return out.sort((a, b) => a.to_ms - b.to_ms);
}

function healthItem(label: string, metric: string, value: number | null, shown: Child, tone: Tone | null, sub?: Child): HTMLElement {
  return h(
    "div",
    { class: "stat", testid: "health-item", data: { metric, value: value === null ? "" : String(value) } },
    h("div", { class: "stat-label" }, label),
    h("div", { class: "stat-value" }, tone ? badge(typeof shown === "string" ? shown : fmtNum(value), tone) : shown),
    sub ? h("div", { class: "stat-sub muted small" }, sub) : null,
  );
}

export async function deploymentsPage(ctx: PageContext): Promise<void> {
  ctx.root.append(
    pageHeader(
      "Deployments",
      "Models this server serves; request rate and latency over time from its monitoring windows; errors and the prediction log's health from its /metrics.",
    ),
  );
  let servingOnly = ctx.query.get("all") !== "1";
  let every = Number(ctx.query.get("every") ?? 5);
  if (!SAMPLE_CHOICES.includes(every)) every = 5;
  let chosenModel = ctx.query.get("model") ?? "";
  let chosenSpan = Number(ctx.query.get("span") ?? NaN);

  const servingBox = h("div", null, note("Loading…"));
  const healthBox = h("div", null, note("Loading…"));
  const trafficBox = h("div", null, note("Loading…"));
  const trafficControls = h("div", { class: "card-actions" });
  const errorsNowBox = h("div");
  const historyBox = h("div", { testid: "error-history" });
  const historyControls = h("div", { class: "card-actions" });
  let historyRange = Number(ctx.query.get("range") ?? 1);
  if (!(historyRange >= 0 && historyRange < HISTORY_RANGES.length)) historyRange = 1;
  const liveBox = h("div", { class: "grid-2 live-charts" });
  const metricsBox = h("div", { class: "table-wrap" }, note("Loading…"));

  const inView = (endpoint: string) => !servingOnly || SERVING.test(endpoint);
  const toggle = h(
    "label",
    { class: "check" },
    h("input", {
      type: "checkbox",
      checked: servingOnly,
      testid: "serving-only",
      on: {
        change: (ev) => {
          servingOnly = (ev.target as HTMLInputElement).checked;
          ctx.setQuery({ all: servingOnly ? null : "1" });
          live.length = 0;
          void load();
        },
      },
    }),
    "Serving endpoints only",
  );
  const everySelect = h(
    "select",
    {
      class: "select",
      testid: "live-every",
      on: {
        change: (ev) => {
          every = Number((ev.target as HTMLSelectElement).value);
          ctx.setQuery({ every: every === 5 ? null : String(every) });
          startSampling();
        },
      },
    },
    SAMPLE_CHOICES.map((s) => h("option", { value: String(s), attrs: s === every ? { selected: "" } : {} }, `every ${s} s`)),
  );
  const refresh = button("Refresh", () => void load(), { testid: "deployments-refresh" });
  ctx.root.append(
    h(
      "div",
      { class: "stack" },
      card("Served models", servingBox, { testid: "serving-card", actions: refresh }),
      card("Prediction log and monitoring", healthBox, { testid: "health-card" }),
      card("Traffic over time", trafficBox, { testid: "traffic-card", actions: trafficControls }),
      card("Errors", [errorsNowBox, liveBox], { testid: "errors-card", actions: [toggle, everySelect] }),
      card("Error rate over time", historyBox, { testid: "error-history-card", actions: historyControls }),
      card("Requests since the server started", metricsBox, { testid: "requests-card" }),
    ),
  );

  const trafficCharts: Chart[] = [];
  const historyCharts: Chart[] = [];
  const liveCharts: Chart[] = [];
  const destroyAll = (list: Chart[]) => list.splice(0).forEach((c) => c.destroy());
  ctx.onCleanup(() => {
    destroyAll(trafficCharts);
    destroyAll(liveCharts);
    destroyAll(historyCharts);
  });

  // ------------------------------------------------------------ served models

  const renderServing = (serving: Awaited<ReturnType<typeof api.serving>>) => {
    const models = serving.models ?? [];
    replace(
      servingBox,
      h("div", { class: "toolbar" }, serving.ready ? badge("ready", "ok", "serving-ready") : badge("not ready", "warn", "serving-ready")),
      models.length === 0
        ? note("No model is loaded yet. Models load at start (keel server --serve) or on their first request.", "muted", "serving-empty")
        : h(
            "table",
            { class: "table", testid: "serving-table" },
            h("thead", null, h("tr", null, h("th", null, "Reference"), h("th", null, "Version"), h("th", null, "Loaded"), h("th", { class: "num" }, "Loads"), h("th", { class: "num" }, "Swaps"), h("th", { class: "num" }, "Failures"), h("th", null, "Shadow"), h("th", null, "Last error"))),
            h(
              "tbody",
              null,
              models.map((m) => {
                const modelName = modelOf(m.ref);
                return h(
                  "tr",
                  { testid: "serving-row", data: { ref: m.ref } },
                  h("td", null, h("a", { href: href("models", [modelName]), class: "strong mono" }, m.ref)),
                  h("td", null, `v${m.version}`),
                  h("td", { class: "nowrap" }, fmtTime(m.loaded_at)),
                  h("td", { class: "num" }, String(m.loads)),
                  h("td", { class: "num" }, String(m.swaps)),
                  h("td", { class: "num" }, m.failures ? badge(String(m.failures), "bad") : "0"),
                  h("td", null, m.shadow_version ? `v${m.shadow_version}` : "—"),
                  h("td", { class: "wrap small" }, m.last_error ? `v${m.failed_version ?? "?"}: ${m.last_error} (${fmtTime(m.last_error_at)})` : "—"),
                );
              }),
            ),
          ),
    );
  };

  // ------------------------------------------------------------ health

  const renderHealth = (samples: Sample[], serving: Awaited<ReturnType<typeof api.serving>>) => {
    const get = (name: string) => total(samples, name);
    const queued = get("keel_prediction_log_queue_depth");
    const written = get("keel_prediction_log_written_total");
    const dropped = get("keel_prediction_log_dropped_total");
    const failed = get("keel_prediction_log_failed_total");
    const sampledOut = get("keel_prediction_log_sampled_out_total");
    const passes = get("keel_monitor_passes_total");
    const leader = get("keel_monitor_leader");
    const lastPass = get("keel_monitor_last_pass_timestamp_seconds");
    const passErrors = get("keel_monitor_pass_errors_total");
    const alertsNew = get("keel_monitor_alerts_total");
    const fromLog = total(samples, "keel_monitor_windows_total", (s) => s.labels["source"] === "log");
    const fromPieces = total(samples, "keel_monitor_windows_total", (s) => s.labels["source"] === "pieces");
    const durSum = get("keel_monitor_pass_duration_seconds_sum");
    const durCount = get("keel_monitor_pass_duration_seconds_count");
    const log = serving.prediction_log;
    const logItems =
      written === null && !log
        ? [note("Predictions are not logged (--no-prediction-log).", "muted", "log-off")]
        : [
            healthItem("Written", "keel_prediction_log_written_total", written, fmtNum(written), null, log ? `${log.durability} durability, sample rate ${fmtNum(log.sample_rate)}` : ""),
            healthItem("Queue depth", "keel_prediction_log_queue_depth", queued, fmtNum(queued), null, "records waiting to be written"),
            healthItem("Dropped", "keel_prediction_log_dropped_total", dropped, fmtNum(dropped), dropped ? "warn" : null, "queue full (--log-when-full drop)"),
            healthItem("Failed", "keel_prediction_log_failed_total", failed, fmtNum(failed), failed ? "bad" : null, "writes that failed"),
            healthItem("Sampled out", "keel_prediction_log_sampled_out_total", sampledOut, fmtNum(sampledOut), null, "not logged by --log-sample-rate"),
          ];
    const monitorItems =
      passes === null
        ? [note("Monitoring is off on this server (keel server --monitor-interval off): no windows are computed.", "muted", "monitor-off")]
        : [
            ...(leader === null
              ? []
              : [
                  healthItem(
                    "This replica",
                    "keel_monitor_leader",
                    leader,
                    leader ? "leader" : "standby",
                    leader ? "ok" : "muted",
                    leader ? "runs the monitoring passes (holds the store's monitor lease)" : "another replica on this store runs the passes; its counters are on its /metrics",
                  ),
                ]),
            healthItem("Monitoring passes", "keel_monitor_passes_total", passes, fmtNum(passes), null, durCount ? `mean ${fmtLatency(((durSum ?? 0) / durCount) * 1e6)}` : ""),
            healthItem(
              "Last pass",
              "keel_monitor_last_pass_timestamp_seconds",
              lastPass,
              lastPass ? h("span", { title: fmtTime(lastPass * 1000) }, fmtRelative(lastPass * 1000)) : "none yet",
              null,
              lastPass ? fmtTime(lastPass * 1000) : "",
            ),
            healthItem("Pass errors", "keel_monitor_pass_errors_total", passErrors, fmtNum(passErrors), passErrors ? "bad" : null, "lines also on the server's stderr"),
            healthItem("Windows computed", "keel_monitor_windows_total", (fromLog ?? 0) + (fromPieces ?? 0), fmtNum((fromLog ?? 0) + (fromPieces ?? 0)), null, `${fmtNum(fromLog)} from the log, ${fmtNum(fromPieces)} merged from pieces; ${fmtNum(alertsNew)} alerts`),
          ];
    replace(healthBox, h("h3", null, "Prediction log"), h("div", { class: "stats", testid: "log-health" }, logItems), h("h3", null, "Monitoring passes"), h("div", { class: "stats", testid: "monitor-health" }, monitorItems));
  };

  // ------------------------------------------------------------ traffic over time

  let servedModels: string[] = [];
  const loadTraffic = async () => {
    destroyAll(trafficCharts);
    if (servedModels.length === 0) {
      replace(trafficControls);
      replace(trafficBox, note("No model is served yet: traffic over time shows for served models.", "muted", "traffic-empty"));
      return;
    }
    if (!servedModels.includes(chosenModel)) chosenModel = servedModels[0] ?? "";
    const model = chosenModel;
    const kinds = await api.windowKinds(model);
    if (!ctx.alive() || model !== chosenModel) return;
    const spans = [...new Set(kinds.map((k) => k.window_ms))].sort((a, b) => a - b);
    if (!spans.includes(chosenSpan)) chosenSpan = spans.includes(HOUR_MS) ? HOUR_MS : (spans[0] ?? NaN);
    const span = chosenSpan;
    const windows = spans.length > 0 ? await windowHistory({ model, windowMs: span, fields: ["operational"], max: TRAFFIC_MAX, days: TRAFFIC_DAYS }) : [];
    if (!ctx.alive() || model !== chosenModel || span !== chosenSpan) return;
    const modelSelect = h(
      "select",
      {
        class: "select",
        testid: "traffic-model",
        on: {
          change: (ev) => {
            chosenModel = (ev.target as HTMLSelectElement).value;
            ctx.setQuery({ model: chosenModel });
            void loadTraffic();
            void loadErrorHistory();
          },
        },
      },
      servedModels.map((m) => h("option", { value: m, attrs: m === model ? { selected: "" } : {} }, m)),
    );
    const spanSelect = h(
      "select",
      {
        class: "select",
        testid: "traffic-span",
        on: {
          change: (ev) => {
            chosenSpan = Number((ev.target as HTMLSelectElement).value);
            ctx.setQuery({ span: String(chosenSpan) });
            void loadTraffic();
          },
        },
      },
      spans.map((s) => h("option", { value: String(s), attrs: s === chosenSpan ? { selected: "" } : {} }, `${fmtSpan(s)} windows`)),
    );
    replace(trafficControls, modelSelect, spans.length > 0 ? spanSelect : null);
    const points = trafficSeries(windows, chosenSpan);
    if (points.length === 0) {
      replace(trafficBox, note(`No monitoring window of ${model} is stored yet. They appear after the server's monitoring passes over logged predictions.`, "muted", "traffic-empty"));
      return;
    }
    const x = points.map((p) => p.to_ms);
    const ms = (us: number | null) => (us === null ? null : us / 1000);
    const rate = lineChart({ time: true, series: [{ label: "predictions/s", x, y: points.map((p) => p.rate) }], testid: "rate-chart", height: 200, yLabel: "predictions/s", yFloor: 0 });
    const latency = lineChart({
      time: true,
      series: [
        { label: "p50 (ms)", x, y: points.map((p) => ms(p.p50)), color: "#059669" },
        { label: "p95 (ms)", x, y: points.map((p) => ms(p.p95)), color: "#d97706" },
        { label: "p99 (ms)", x, y: points.map((p) => ms(p.p99)), color: "#dc2626" },
      ],
      testid: "latency-chart",
      height: 200,
      yFloor: 0,
      yLabel: "ms",
    });
    trafficCharts.push(rate, latency);
    const first = points[0] as TrafficPoint;
    const last = points[points.length - 1] as TrafficPoint;
    replace(
      trafficBox,
      h(
        "p",
        { class: "muted small", testid: "traffic-range" },
        `${points.length} ${fmtSpan(chosenSpan)} windows of ${model}, ${fmtTime(first.to_ms)} → ${fmtTime(last.to_ms)}; newest: ${fmtNum(last.predictions)} predictions, ${fmtNum(last.rate, 3)}/s, p99 ${fmtLatency(last.p99)}. `,
        "Latency is the logged request latency of the version that answered most in each window.",
        windows.length >= TRAFFIC_MAX ? ` The newest ${TRAFFIC_MAX} stored ${fmtSpan(chosenSpan)} windows are read.` : "",
      ),
      h("div", { class: "grid-2" }, h("div", null, h("h3", null, "Request rate"), rate.el), h("div", null, h("h3", null, "Latency percentiles"), latency.el)),
    );
  };

  // ------------------------------------------------------------ error history

  const loadErrorHistory = async () => {
    destroyAll(historyCharts);
    const model = servedModels.includes(chosenModel) ? chosenModel : (servedModels[0] ?? "");
    if (!model) {
      replace(historyControls);
      replace(historyBox, note("No model is served yet.", "muted", "error-history-empty"));
      return;
    }
    const [label, range, step] = HISTORY_RANGES[historyRange] as [string, number, number];
    const to = Date.now();
    const from = to - range;
    const points = await api.requestCounts({ model, fromMs: from, toMs: to, stepMs: step });
    if (!ctx.alive()) return;
    const rangeSelect = h(
      "select",
      {
        class: "select",
        testid: "error-history-range",
        on: {
          change: (ev) => {
            historyRange = Number((ev.target as HTMLSelectElement).value);
            ctx.setQuery({ range: historyRange === 1 ? null : String(historyRange) });
            void loadErrorHistory();
          },
        },
      },
      HISTORY_RANGES.map(([l], i) => h("option", { value: String(i), attrs: i === historyRange ? { selected: "" } : {} }, l)),
    );
    replace(historyControls, rangeSelect);
    let requests = 0;
    let errors = 0;
    for (const p of points) {
      requests += p.requests;
      errors += p.client_errors + p.server_errors;
    }
    if (points.length === 0) {
      replace(historyBox, note(`No request to ${model} is recorded in the ${label}.`, "muted", "error-history-empty"));
      return;
    }
    const x = points.map((p) => p.time_ms);
    const pct = (n: number, d: number) => (d > 0 ? (n / d) * 100 : null);
    const chart = lineChart({
      time: true,
      series: [
        { label: "4xx %", x, y: points.map((p) => pct(p.client_errors, p.requests)), color: "#d97706" },
        { label: "5xx %", x, y: points.map((p) => pct(p.server_errors, p.requests)), color: "#dc2626" },
      ],
      testid: "error-history-chart",
      height: 180,
      yFloor: 0,
      yLabel: "% of requests",
    });
    historyCharts.push(chart);
    replace(
      historyBox,
      h(
        "p",
        { class: "muted small", testid: "error-history-summary", data: { model, requests: String(requests), errors: String(errors), points: String(points.length) } },
        `${model}, ${label} in steps of ${fmtSpan(step)}: ${fmtNum(errors)} of ${fmtNum(requests)} requests answered with an error (${fmtPercent(requests > 0 ? errors / requests : null)}), every replica on this store counted. Requests that named no servable model are only in /metrics.`,
      ),
      chart.el,
    );
  };

  // ------------------------------------------------------------ errors

  const live: Counters[] = [];
  const renderErrorsNow = (samples: Sample[]) => {
    const c = countersOf(samples, inView, Date.now());
    const errors = c.e4xx + c.e5xx;
    const share = c.requests > 0 ? errors / c.requests : null;
    const shareOf = (n: number) => (c.requests > 0 ? n / c.requests : null);
    replace(
      errorsNowBox,
      h(
        "div",
        { class: "stats" },
        h(
          "div",
          { class: "stat", testid: "error-share", data: { share: share === null ? "" : String(share), requests: String(c.requests), errors: String(errors) } },
          h("div", { class: "stat-label" }, "4xx/5xx share since the server started"),
          h("div", { class: "stat-value" }, share === null ? "–" : badge(fmtPercent(share), errors ? (c.e5xx ? "bad" : "warn") : "ok")),
          h("div", { class: "stat-sub muted small" }, `${fmtNum(errors)} of ${fmtNum(c.requests)} ${servingOnly ? "serving " : ""}requests`),
        ),
        h("div", { class: "stat" }, h("div", { class: "stat-label" }, "4xx (client errors)"), h("div", { class: "stat-value" }, fmtNum(c.e4xx)), h("div", { class: "stat-sub muted small" }, fmtPercent(shareOf(c.e4xx)))),
        h("div", { class: "stat" }, h("div", { class: "stat-label" }, "5xx (server errors)"), h("div", { class: "stat-value" }, fmtNum(c.e5xx)), h("div", { class: "stat-sub muted small" }, fmtPercent(shareOf(c.e5xx)))),
      ),
    );
  };

  const renderLive = () => {
    destroyAll(liveCharts);
    if (live.length < 2) {
      replace(liveBox, h("div", { class: "span-2" }, note(`Sampling /metrics every ${every} s while this page is open: the live charts appear after the second sample.`, "muted", "live-waiting")));
      return;
    }
    const x: number[] = [];
    const rate: Array<number | null> = [];
    const share4: Array<number | null> = [];
    const share5: Array<number | null> = [];
    for (let i = 1; i < live.length; i++) {
      const a = live[i - 1] as Counters;
      const b = live[i] as Counters;
      const dt = (b.t - a.t) / 1000;
      const dn = b.requests - a.requests;
      if (dt <= 0 || dn < 0) continue; // a restarted server resets its counters
      x.push(b.t);
      rate.push(dn / dt);
      share4.push(dn > 0 ? ((b.e4xx - a.e4xx) / dn) * 100 : null);
      share5.push(dn > 0 ? ((b.e5xx - a.e5xx) / dn) * 100 : null);
    }
    const rateChart = lineChart({ time: true, series: [{ label: "requests/s", x, y: rate }], testid: "live-rate-chart", height: 160, yLabel: "requests/s", xPad: every * 2000, yFloor: 0 });
    const errChart = lineChart({
      time: true,
      series: [
        { label: "4xx %", x, y: share4, color: "#d97706" },
        { label: "5xx %", x, y: share5, color: "#dc2626" },
      ],
      testid: "live-error-chart",
      height: 160,
      xPad: every * 2000,
      yFloor: 0,
      yLabel: "% of requests",
    });
    liveCharts.push(rateChart, errChart);
    replace(
      liveBox,
      h("div", null, h("h3", null, `Requests per second (live, every ${every} s)`), rateChart.el),
      h("div", null, h("h3", null, "Error share per interval (live)"), errChart.el),
    );
  };

  let timer: number | undefined;
  let sampling = false;
  const sampleOnce = async () => {
    if (sampling || document.hidden) return;
    sampling = true;
    try {
      const text = await api.prometheus();
      if (!ctx.alive()) return;
      const samples = parsePrometheus(text);
      live.push(countersOf(samples, inView, Date.now()));
      if (live.length > LIVE_POINTS + 1) live.splice(0, live.length - LIVE_POINTS - 1);
      renderErrorsNow(samples);
      renderLive();
    } catch {
      // A missed sample leaves a gap; the next one continues.
    } finally {
      sampling = false;
    }
  };
  const startSampling = () => {
    if (timer !== undefined) window.clearInterval(timer);
    timer = window.setInterval(() => void sampleOnce(), every * 1000);
    renderLive();
  };
  ctx.onCleanup(() => {
    if (timer !== undefined) window.clearInterval(timer);
  });

  // ------------------------------------------------------------ requests table

  const renderMetrics = (samples: Sample[]) => {
    const rows = new Map<string, Row>();
    const latency = new Map<string, Latency>();
    for (const s of samples) {
      const endpoint = s.labels["endpoint"] ?? "";
      if (!inView(endpoint)) continue;
      const model = s.labels["model"] ?? "";
      if (s.name === "keel_http_requests_total") {
        const version = s.labels["version"] ?? "";
        const key = `${endpoint}\u0000${model}\u0000${version}`;
        const row = rows.get(key) ?? { endpoint, model, version, requests: 0, errors: 0 };
        row.requests += s.value;
        if (Number(s.labels["code"] ?? 0) >= 400) row.errors += s.value;
        rows.set(key, row);
      } else if (s.name.startsWith("keel_http_request_duration_seconds")) {
        const key = `${endpoint}\u0000${model}`;
        const l = latency.get(key) ?? { count: 0, sum: 0, buckets: [] };
        if (s.name.endsWith("_count")) l.count = s.value;
        else if (s.name.endsWith("_sum")) l.sum = s.value;
        else if (s.name.endsWith("_bucket")) l.buckets.push([s.labels["le"] === "+Inf" ? Infinity : Number(s.labels["le"]), s.value]);
        latency.set(key, l);
      }
    }
    const list = [...rows.values()].sort((a, b) => b.requests - a.requests);
    if (list.length === 0) {
      replace(metricsBox, note(servingOnly ? "No serving requests yet." : "No requests yet.", "muted", "requests-empty"));
      return;
    }
    const ms = (seconds: number) => fmtLatency(seconds * 1e6);
    replace(
      metricsBox,
      h(
        "table",
        { class: "table table-compact", testid: "requests-table" },
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", null, "Endpoint"),
            h("th", null, "Model"),
            h("th", null, "Version"),
            h("th", { class: "num" }, "Requests"),
            h("th", { class: "num" }, "Errors"),
            h("th", { class: "num" }, "Error share"),
            h("th", { class: "num" }, "Mean"),
            h("th", { class: "num" }, "p50"),
            h("th", { class: "num" }, "p95"),
            h("th", { class: "num" }, "p99"),
          ),
        ),
        h(
          "tbody",
          null,
          list.map((r) => {
            // Latency is recorded per endpoint and model (not version).
            const l = latency.get(`${r.endpoint}\u0000${r.model}`);
            return h(
              "tr",
              { testid: "requests-row", data: { endpoint: r.endpoint, model: r.model, errors: String(r.errors) } },
              h("td", { class: "mono" }, r.endpoint),
              h("td", null, r.model || "—"),
              h("td", null, r.version ? `v${r.version}` : "—"),
              h("td", { class: "num" }, fmtNum(r.requests)),
              h("td", { class: "num" }, r.errors ? badge(fmtNum(r.errors), "bad") : "0"),
              h("td", { class: "num" }, r.requests ? fmtPercent(r.errors / r.requests) : "–"),
              h("td", { class: "num" }, l && l.count ? ms(l.sum / l.count) : "–"),
              h("td", { class: "num" }, l ? ms(quantile(0.5, l.buckets)) : "–"),
              h("td", { class: "num" }, l ? ms(quantile(0.95, l.buckets)) : "–"),
              h("td", { class: "num" }, l ? ms(quantile(0.99, l.buckets)) : "–"),
            );
          }),
        ),
      ),
      h("p", { class: "muted small" }, "Counters since the server started. Latency quantiles are estimated from the histogram buckets and shared by all versions of a model."),
    );
  };

  // ------------------------------------------------------------ load

  const load = async () => {
    try {
      const [serving, text] = await Promise.all([api.serving(), api.prometheus()]);
      if (!ctx.alive()) return;
      const samples = parsePrometheus(text);
      renderServing(serving);
      renderHealth(samples, serving);
      renderErrorsNow(samples);
      renderMetrics(samples);
      live.push(countersOf(samples, inView, Date.now()));
      startSampling();
      servedModels = [...new Set((serving.models ?? []).map((m) => modelOf(m.ref)))].sort();
      await Promise.all([
        loadTraffic().catch((e: unknown) => {
          if (ctx.alive()) replace(trafficBox, note(`Could not load monitoring windows: ${errorText(e)}`, "error"));
        }),
        loadErrorHistory().catch((e: unknown) => {
          if (ctx.alive()) replace(historyBox, note(`Could not load the error history: ${errorText(e)}`, "error"));
        }),
      ]);
    } catch (e) {
      replace(servingBox, note(`Could not load: ${errorText(e)}`, "error"));
    }
  };

  await load();
}

/** The model name of a served reference: churn@champion, churn/3, churn. */
function modelOf(ref: string): string {
  return ref.split(/[@/]/)[0] ?? ref;
}
