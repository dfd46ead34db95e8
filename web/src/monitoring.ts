// #/monitoring/<model>: the drift dashboard. The server's list of window kinds
// (monitor/window-kinds) says which versions and window lengths exist; the
// windows of the chosen
// version and length (window_ms=, paged back with before_id: 30 days or 720
// windows) give each statistic over time against its threshold, prediction
// drift, and realised performance beside the label-free estimate; the newest
// of them gives each feature's current verdict, and its full report (id=) the
// histograms. Verdicts and thresholds are the server's (monitor/windows);
// nothing is recomputed.

import { type Alert, api, type ReportColumn, type StoredWindow, type WindowKind, windowHistory } from "./api";
import { type Chart, histogramChart, lineChart, sparkline } from "./charts";
import { badge, card, type Child, errorText, facts, h, note, pageHeader, replace, type Tone } from "./dom";
import { fmtLatency, fmtNum, fmtPercent, fmtSpan, fmtTime } from "./format";
import { href, type PageContext } from "./router";

// A chart's history: 30 days or 720 windows of the chosen length, whichever is fewer.
const HISTORY_DAYS = 30;
const HISTORY_MAX = 720;
const HOUR_MS = 3600000;

export async function monitoringIndexPage(ctx: PageContext): Promise<void> {
  ctx.root.append(pageHeader("Monitoring", "Drift, performance and alerts of served models, from the server's monitoring passes."));
  const page = await api.searchModels("", 100);
  if (!ctx.alive()) return;
  const models = page.registered_models ?? [];
  if (models.length === 1 && models[0]) {
    window.location.replace(href("monitoring", [models[0].name]));
    return;
  }
  ctx.root.append(
    card(
      "Models",
      models.length === 0
        ? note("No registered models yet.")
        : h(
            "div",
            { class: "tiles", testid: "monitoring-models" },
            models.map((m) => h("a", { class: "tile", href: href("monitoring", [m.name]), testid: "monitoring-model" }, h("div", { class: "strong" }, m.name), h("div", { class: "muted small" }, (m.aliases ?? []).map((a) => `@${a.alias} v${a.version}`).join("  ")))),
          ),
    ),
  );
}

function verdict(drift: boolean | null | undefined, testid?: string): HTMLElement {
  if (drift === null || drift === undefined) return badge("no data", "muted", testid);
  return drift ? badge("drift", "bad", testid) : badge("no drift", "ok", testid);
}

function severityTone(severity: string): Tone {
  return severity === "critical" ? "bad" : severity === "warning" ? "warn" : "info";
}

function alertsTable(alerts: Alert[]): HTMLElement {
  if (alerts.length === 0) return note("No alerts.", "muted", "alerts-empty");
  return h(
    "table",
    { class: "table table-compact", testid: "alerts-table" },
    h("thead", null, h("tr", null, h("th", null, "Severity"), h("th", null, "Rule"), h("th", null, "Version"), h("th", null, "Metric"), h("th", { class: "num" }, "Value"), h("th", { class: "num" }, "Threshold"), h("th", null, "First"), h("th", null, "Last"), h("th", { class: "num" }, "Fired"))),
    h(
      "tbody",
      null,
      alerts.map((a) =>
        h(
          "tr",
          { testid: "alert-row", title: a.summary },
          h("td", null, badge(a.severity, severityTone(a.severity))),
          h("td", null, a.rule),
          h("td", null, `v${a.version}`),
          h("td", { class: "mono" }, `${a.metric} ${a.op}`),
          h("td", { class: "num" }, fmtNum(a.value)),
          h("td", { class: "num" }, fmtNum(a.threshold)),
          h("td", { class: "nowrap" }, fmtTime(a.first_ms)),
          h("td", { class: "nowrap" }, fmtTime(a.last_ms)),
          h("td", { class: "num" }, String(a.count)),
        ),
      ),
    ),
  );
}

function columnDetails(c: ReportColumn): HTMLElement {
  const extras = Object.entries(c.extra ?? {});
  const rows: Array<[string, Child]> = [
    ["Kind", c.kind],
    ["Test", `${c.test} (${c.direction === "p_value" ? "p-value: drift below" : "distance: drift above"} ${fmtNum(c.threshold)})`],
    ["Score", c.error ? h("span", { class: "text-bad" }, c.error) : fmtNum(c.score ?? null)],
    ["Rows", `reference ${c.rows.reference}, current ${c.rows.current}`],
    ["Missing", `reference ${fmtPercent(c.missing.reference)}, current ${fmtPercent(c.missing.current)}`],
  ];
  if (c.unseen && c.unseen.categories.length > 0) {
    rows.push(["Unseen categories", `${c.unseen.categories.slice(0, 8).join(", ")}${c.unseen.categories.length > 8 ? ", …" : ""} (${fmtPercent(c.unseen.share)} of rows)`]);
  }
  for (const [name, e] of extras) {
    rows.push([name, e.error ? e.error : [fmtNum(e.score ?? null), " ", verdict(e.drift)]]);
  }
  return h("div", { class: "column-details" }, facts(rows), c.histogram ? histogramChart(c.histogram) : null);
}

export async function monitoringPage(ctx: PageContext): Promise<void> {
  const model = ctx.params[0] ?? "";
  ctx.root.append(
    pageHeader(
      ["Monitoring: ", model],
      "Each verdict and threshold is the server's, from its stored monitoring windows.",
      [h("a", { class: "btn", href: href("models", [model]) }, "Model"), h("a", { class: "btn btn-ghost", href: "#/monitoring" }, "All models")],
    ),
  );
  const [kinds, alerts] = await Promise.all([api.windowKinds(model), api.alerts(model, 100)]);
  if (!ctx.alive()) return;

  if (kinds.length === 0) {
    ctx.root.append(
      note("No monitoring windows stored for this model yet. They appear after the server's next monitoring pass over logged predictions (keel server --monitor-interval).", "muted", "no-windows"),
      card("Alerts", alertsTable(alerts), { testid: "alerts-card" }),
    );
    return;
  }

  const versions = [...new Set(kinds.map((k) => k.version))].sort((a, b) => Number(b) - Number(a));
  const newestOf = (list: WindowKind[]) => list.reduce((a, b) => (b.newest_to_ms > a.newest_to_ms ? b : a));
  const newest = newestOf(kinds);
  let version = ctx.query.get("version") ?? newest.version;
  if (!versions.includes(version)) version = newest.version;
  const ofVersion = () => kinds.filter((k) => k.version === version);
  const spansOf = () => [...new Set(ofVersion().map((k) => k.window_ms))].sort((a, b) => a - b);
  let span = Number(ctx.query.get("span") ?? NaN);
  // Default: hourly windows when there are any, else the length of the version's newest window.
  if (!spansOf().includes(span)) span = spansOf().includes(HOUR_MS) ? HOUR_MS : newestOf(ofVersion()).window_ms;
  let feature = ctx.query.get("feature") ?? "";
  let perfMetric = ctx.query.get("metric") ?? "";

  const charts: Chart[] = [];
  ctx.onCleanup(() => charts.splice(0).forEach((c) => c.destroy()));
  const track = (c: Chart) => {
    charts.push(c);
    return c.el;
  };

  const versionSelect = h("select", { class: "select", testid: "monitor-version" }, versions.map((v) => h("option", { value: v }, `version ${v}`)));
  const spanSelect = h("select", { class: "select", testid: "monitor-span" });
  const controls = h("div", { class: "toolbar" }, h("label", { class: "inline-field" }, "Version", versionSelect), h("label", { class: "inline-field" }, "Window", spanSelect));
  const body = h("div", { class: "stack" });
  ctx.root.append(controls, body);

  // The history of one version and window length (server-side filter and keyset paging), newest first.
  const histories = new Map<string, Promise<StoredWindow[]>>();
  const historyOf = (v: string, s: number) => {
    const key = `${v}/${s}`;
    let got = histories.get(key);
    if (!got) {
      got = windowHistory({ model, version: v, windowMs: s, max: HISTORY_MAX, days: HISTORY_DAYS });
      got.catch(() => histories.delete(key));
      histories.set(key, got);
    }
    return got;
  };
  let renders = 0;

  const render = async () => {
    const mine = ++renders;
    versionSelect.value = version;
    replace(spanSelect, spansOf().map((s) => h("option", { value: String(s) }, fmtSpan(s))));
    spanSelect.value = String(span);
    let history: StoredWindow[];
    try {
      history = await historyOf(version, span);
    } catch (e) {
      if (ctx.alive() && mine === renders) replace(body, note(`Could not load the windows: ${errorText(e)}`, "error"));
      return;
    }
    if (!ctx.alive() || mine !== renders) return;
    charts.splice(0).forEach((c) => c.destroy());
    ctx.setQuery({ version, span: String(span), feature, metric: perfMetric });

    // Oldest first, for charts.
    const series = [...history].sort((a, b) => a.to_ms - b.to_ms || a.id - b.id);
    const current = series[series.length - 1];
    if (!current) {
      replace(body, note("No window of this length for this version."));
      return;
    }
    const x = series.map((w) => w.to_ms);
    const features = (current.columns ?? []).filter((c) => c.role === "feature");
    const predictions = (current.columns ?? []).filter((c) => c.role === "prediction");
    if (!features.some((c) => c.name === feature)) {
      feature = (features.find((c) => c.drift) ?? features[0])?.name ?? "";
    }
    const scoreSeries = (name: string) =>
      series.map((w) => {
        const col = w.columns?.find((c) => c.name === name);
        return col && col.score !== null && col.score !== undefined ? col.score : null;
      });

    // The newest window's summary.
    const ds = current.dataset;
    const op = current.operational;
    const perf = current.performance;
    const summary = h(
      "div",
      { class: "stats", testid: "monitor-summary" },
      stat(`Window (${fmtSpan(span)}) ending`, fmtTime(current.to_ms), `from ${fmtTime(current.from_ms)}`),
      stat("Predictions", fmtNum(current.rows ?? null), op ? `${fmtNum(op.rate_per_s ?? null, 3)}/s` : ""),
      stat("Dataset drift", ds ? `${ds.drifted} of ${ds.columns} columns` : "–", ds ? [verdict(ds.drift, "dataset-drift"), ` share ${fmtPercent(ds.share)} (drift at ${fmtPercent(ds.drift_share)})`] : ""),
      stat("Prediction drift", verdict(current.prediction_drift, "prediction-drift"), predictions[0] ? `${predictions[0].test} ${fmtNum(predictions[0].score)}` : ""),
      stat("Labelled", fmtNum(perf?.labelled ?? null), perf && perf.unmatched_labels ? `${perf.unmatched_labels} unmatched labels` : ""),
      stat("Latency p50 / p95", op ? `${fmtLatency(op.latency_us.p50)} / ${fmtLatency(op.latency_us.p95)}` : "–", op ? `p99 ${fmtLatency(op.latency_us.p99)}` : ""),
    );

    // The feature grid.
    const grid = h(
      "div",
      { class: "drift-grid", testid: "drift-grid" },
      features.map((c) => {
        const drifted = c.drift === true;
        const cell = h(
          "button",
          {
            type: "button",
            class: `drift-cell ${drifted ? "drifted" : c.drift === false ? "stable" : "unknown"} ${c.name === feature ? "selected" : ""}`,
            testid: "drift-cell",
            data: { feature: c.name, drift: String(c.drift === true), verdict: c.drift === null ? "none" : drifted ? "drift" : "ok" },
            title: `${c.name}: ${c.test ?? ""} ${fmtNum(c.score)} (threshold ${fmtNum(c.threshold)})`,
            on: {
              click: () => {
                feature = c.name;
                void render();
              },
            },
          },
          h("span", { class: "drift-name" }, c.name),
          h("div", { class: "drift-cell-score" }, h("span", null, h("span", { class: "mono" }, `${c.test ?? "—"} ${fmtNum(c.score, 3)}`), h("span", { class: "muted small" }, ` / ${fmtNum(c.threshold, 3)}`)), verdict(c.drift)),
          sparkline(scoreSeries(c.name), c.threshold, drifted),
        );
        return cell;
      }),
    );

    // The selected feature over time.
    const featureCol = features.find((c) => c.name === feature);
    const featureBox = h("div");
    if (featureCol) {
      featureBox.append(
        track(
          lineChart({
            time: true,
            series: [{ label: `${featureCol.test ?? "score"} of ${feature}`, x, y: scoreSeries(feature) }],
            rules: featureCol.threshold !== null ? [{ label: "threshold", value: featureCol.threshold }] : [],
            testid: "feature-chart",
            height: 220,
          }),
        ),
      );
      const detailsBox = h("div", { class: "details-box" }, note("Loading the newest report…"));
      featureBox.append(detailsBox);
      void loadDetails(current, feature, detailsBox);
    }

    // Prediction drift over time.
    const predBox = h("div");
    if (predictions.length === 0) {
      predBox.append(note("The windows carry no prediction column."));
    } else {
      const first = predictions[0] as (typeof predictions)[number];
      predBox.append(
        track(
          lineChart({
            time: true,
            series: predictions.map((p) => ({ label: `${p.test ?? "score"} of ${p.name}`, x, y: scoreSeries(p.name) })),
            rules: first.threshold !== null ? [{ label: "threshold", value: first.threshold }] : [],
            testid: "prediction-chart",
            height: 200,
          }),
        ),
      );
    }

    // Realised performance beside the label-free estimate and validation.
    const perfKeys = [...new Set(series.flatMap((w) => [...Object.keys(w.performance?.live ?? {}), ...Object.keys(w.performance?.estimated ?? {}), ...Object.keys(w.performance?.reference ?? {})]))];
    if (!perfKeys.includes(perfMetric)) perfMetric = perfKeys.includes("auc") ? "auc" : (perfKeys[0] ?? "");
    const perfSelect = h("select", { class: "select", testid: "perf-metric" }, perfKeys.map((k) => h("option", { value: k }, k)));
    perfSelect.value = perfMetric;
    perfSelect.addEventListener("change", () => {
      perfMetric = perfSelect.value;
      void render();
    });
    const perfBox = h("div");
    if (perfMetric) {
      const pick = (which: "live" | "estimated" | "reference") =>
        series.map((w) => {
          const v = w.performance?.[which]?.[perfMetric];
          return v === undefined || v === null ? null : v;
        });
      perfBox.append(
        track(
          lineChart({
            time: true,
            series: [
              { label: "realised (labels)", x, y: pick("live"), color: "#2563eb", width: 2 },
              { label: "estimated (no labels)", x, y: pick("estimated"), color: "#d97706", dash: [5, 3] },
              { label: "validation at training", x, y: pick("reference"), color: "#64748b", dash: [2, 3], width: 1.25 },
            ],
            testid: "performance-chart",
            height: 220,
          }),
        ),
      );
      if (perf && perf.labelled === 0) {
        perfBox.append(note("No labels in the newest window yet: the estimate stands in for realised performance."));
      }
    } else {
      perfBox.append(note("No performance figures in these windows."));
    }

    replace(
      body,
      summary,
      card(`Features: newest ${fmtSpan(span)} window`, grid, { testid: "drift-card", actions: h("span", { class: "muted small" }, `${features.filter((c) => c.drift).length} of ${features.length} drifted`) }),
      card(featureCol ? ["Drift over time: ", h("span", { class: "mono" }, feature)] : "Drift over time", featureBox, { testid: "feature-card" }),
      h(
        "div",
        { class: "grid-2" },
        card("Prediction drift", predBox, { testid: "prediction-card", actions: verdict(current.prediction_drift) }),
        card("Performance", perfBox, { testid: "performance-card", actions: perfSelect }),
      ),
      card(`Alerts (${alerts.length})`, alertsTable(alerts), { testid: "alerts-card" }),
    );
  };

  // The whole stored report (histograms, missing values) of the newest window, on demand: that one window by id.
  const reports = new Map<number, StoredWindow>();
  const loadDetails = async (current: StoredWindow, name: string, into: HTMLElement) => {
    try {
      let full = reports.get(current.id);
      if (!full) {
        const got = await api.windows({ model, id: current.id, limit: 1, full: true, fields: ["rows"] });
        full = got.find((w) => w.id === current.id);
        if (full) reports.set(current.id, full);
      }
      const col = full?.report?.drift.columns.find((c) => c.name === name);
      if (!ctx.alive()) return;
      replace(into, col ? columnDetails(col) : note("The stored report has no details for this column."));
    } catch (e) {
      replace(into, note(`Could not load the report: ${errorText(e)}`, "error"));
    }
  };

  versionSelect.addEventListener("change", () => {
    version = versionSelect.value;
    const spans = spansOf();
    if (!spans.includes(span)) span = spans[0] ?? span;
    void render();
  });
  spanSelect.addEventListener("change", () => {
    span = Number(spanSelect.value);
    void render();
  });
  await render();
}

function stat(label: string, value: Child, sub: Child): HTMLElement {
  return h("div", { class: "stat" }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value), h("div", { class: "stat-sub muted small" }, sub));
}
