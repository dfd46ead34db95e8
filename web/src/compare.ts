// #/compare?runs=a,b,...: selected runs side by side; params and metrics
// whose values differ are highlighted; metric curves of all of them.

import { api, num, type Run } from "./api";
import { type Chart } from "./charts";
import { card, errorText, h, note, pageHeader, replace } from "./dom";
import { runName } from "./experiments";
import { fmtNum } from "./format";
import { href, type PageContext } from "./router";
import { defaultCurves, metricCurves } from "./run";

const MAX_RUNS = 20;

function compareTable(
  runs: Run[],
  keys: string[],
  valueOf: (run: Run, key: string) => string | undefined,
  testid: string,
  rowTestid: string,
  onlyDiff: boolean,
  numeric: boolean,
): HTMLElement {
  if (keys.length === 0) return note("None logged.");
  const rows = keys.map((key) => {
    const values = runs.map((r) => valueOf(r, key));
    const differs = new Set(values.map((v) => v ?? "\u0000missing")).size > 1;
    return { key, values, differs };
  });
  const shown = onlyDiff ? rows.filter((r) => r.differs) : rows;
  return h(
    "table",
    { class: "table table-compact compare", testid },
    h("thead", null, h("tr", null, h("th", null, "Key"), runs.map((r) => h("th", null, h("a", { href: href("runs", [r.info.run_id]) }, runName(r)))))),
    h(
      "tbody",
      null,
      shown.length === 0
        ? h("tr", null, h("td", { colspan: runs.length + 1, class: "muted" }, "No differences."))
        : shown.map((row) =>
            h(
              "tr",
              { class: row.differs ? "diff" : "", testid: rowTestid, data: { key: row.key, differs: String(row.differs) } },
              h("td", { class: "mono key" }, row.key),
              row.values.map((v) => h("td", { class: numeric ? "num" : "mono wrap" }, v === undefined ? h("span", { class: "muted" }, "—") : v)),
            ),
          ),
    ),
  );
}

export async function compareRunsPage(ctx: PageContext): Promise<void> {
  const ids = (ctx.query.get("runs") ?? "").split(",").filter((s) => s.length > 0).slice(0, MAX_RUNS);
  ctx.root.append(pageHeader("Compare runs", `${ids.length} runs side by side; rows whose values differ are highlighted.`, h("a", { class: "btn", href: "#/experiments" }, "Back to runs")));
  if (ids.length === 0) {
    ctx.root.append(note("Select runs on the Experiments page, then Compare."));
    return;
  }
  const runs = await Promise.all(ids.map((id) => api.getRun(id)));
  if (!ctx.alive()) return;

  const paramKeys = [...new Set(runs.flatMap((r) => (r.data.params ?? []).map((p) => p.key)))].sort();
  const metricKeys = [...new Set(runs.flatMap((r) => (r.data.metrics ?? []).map((m) => m.key)))].sort();
  const paramValue = (r: Run, k: string) => r.data.params?.find((p) => p.key === k)?.value;
  const metricValue = (r: Run, k: string) => {
    const m = r.data.metrics?.find((x) => x.key === k);
    return m ? fmtNum(num(m.value), 6) : undefined;
  };

  let onlyDiff = ctx.query.get("diff") === "1";
  const paramsBox = h("div");
  const metricsBox = h("div");
  const render = () => {
    replace(paramsBox, compareTable(runs, paramKeys, paramValue, "compare-params", "compare-param-row", onlyDiff, false));
    replace(metricsBox, compareTable(runs, metricKeys, metricValue, "compare-metrics", "compare-metric-row", onlyDiff, true));
  };
  const diffToggle = h(
    "label",
    { class: "check" },
    h("input", {
      type: "checkbox",
      checked: onlyDiff,
      testid: "only-differences",
      on: {
        change: (ev) => {
          onlyDiff = (ev.target as HTMLInputElement).checked;
          ctx.setQuery({ diff: onlyDiff ? "1" : null });
          render();
        },
      },
    }),
    "Only differences",
  );
  render();

  const metricSelect = h(
    "select",
    { class: "select", testid: "compare-metric" },
    metricKeys.map((k) => h("option", { value: k }, k)),
  );
  const initial = ctx.query.get("metric") ?? defaultCurves(runs.flatMap((r) => r.data.metrics ?? []))[0];
  if (initial && metricKeys.includes(initial)) metricSelect.value = initial;
  const chartBox = h("div", { class: "chart-box" });
  let chart: Chart | null = null;
  ctx.onCleanup(() => chart?.destroy());
  const draw = async () => {
    chart?.destroy();
    chart = null;
    const key = metricSelect.value;
    if (!key) {
      replace(chartBox, note("No metrics logged."));
      return;
    }
    replace(chartBox, note("Loading metric history…"));
    try {
      const c = await metricCurves(runs.map((r) => ({ id: r.info.run_id, name: runName(r) })), [key], "compare-chart");
      if (!ctx.alive()) {
        c.destroy();
        return;
      }
      chart = c;
      replace(chartBox, c.el);
    } catch (e) {
      replace(chartBox, note(`Could not load metric history: ${errorText(e)}`, "error"));
    }
  };
  metricSelect.addEventListener("change", () => {
    ctx.setQuery({ metric: metricSelect.value });
    void draw();
  });

  ctx.root.append(
    h(
      "div",
      { class: "stack" },
      card("Params", paramsBox, { testid: "compare-params-card", actions: diffToggle }),
      card("Metrics (latest values)", metricsBox, { testid: "compare-metrics-card" }),
      card("Metric curves", chartBox, { testid: "compare-curves-card", actions: metricSelect }),
    ),
  );
  void draw();
}
