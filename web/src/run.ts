// #/runs/<id>: one run: overview, params, metrics with their curves, tags,
// inputs, registered versions and the artifacts browser.

import { api, artifactUrl, type ArtifactFile, getBlob, getText, metricHistory, num, quote, type Run } from "./api";
import { type Chart, lineChart } from "./charts";
import { badge, button, card, type Child, errorText, facts, h, note, pageHeader, replace } from "./dom";
import { metricOf, preferredMetrics, runName, statusTone } from "./experiments";
import { fmtBytes, fmtDuration, fmtNum, fmtTime } from "./format";
import { href, type PageContext } from "./router";

const TEXT_EXT = /\.(json|txt|yaml|yml|md|csv|log|py|cfg|ini|toml|html|xml)$|(^|\/)MLmodel$/;
const PREVIEW_LIMIT = 512 * 1024;

/** Curves of one or more metrics of one or more runs (one series per run × metric). */
export async function metricCurves(
  runs: Array<{ id: string; name: string }>,
  keys: string[],
  testid: string,
): Promise<Chart> {
  const histories = await Promise.all(
    runs.flatMap((r) => keys.map(async (k) => ({ run: r, key: k, points: await metricHistory(r.id, k) }))),
  );
  const series = histories.map(({ run, key, points }) => {
    const sorted = [...points].sort((a, b) => a.step - b.step || a.timestamp - b.timestamp);
    const label = runs.length > 1 && keys.length > 1 ? `${run.name} · ${key}` : runs.length > 1 ? run.name : key;
    return { label, x: sorted.map((p) => p.step), y: sorted.map((p) => num(p.value)) };
  });
  return lineChart({ series, xLabel: "step", testid, height: 260 });
}

function download(url: string, name: string): void {
  // A link carries no Authorization header: fetch with the token, then save the blob.
  void getBlob(url).then(
    (blob) => {
      // As octet-stream, so the browser keeps the name (no ".txt" added for text/plain).
      const objectUrl = URL.createObjectURL(new Blob([blob], { type: "application/octet-stream" }));
      const a = h("a", { href: objectUrl, attrs: { download: name } });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(objectUrl), 10000);
    },
    (e) => window.alert(`Download failed: ${errorText(e)}`),
  );
}

function artifactsBrowser(run: Run): HTMLElement {
  const root = h("div", { class: "artifacts", testid: "artifacts" });
  const preview = h("div", { class: "artifact-preview", testid: "artifact-preview" });
  const baseName = (p: string) => p.split("/").pop() ?? p;

  const listing = async (path: string, depth: number, into: HTMLElement) => {
    replace(into, note("Loading…"));
    try {
      const resp = await api.listArtifacts(run.info.run_id, path);
      const files = [...(resp.files ?? [])].sort((a, b) => Number(b.is_dir) - Number(a.is_dir) || a.path.localeCompare(b.path));
      if (files.length === 0) {
        replace(into, depth === 0 ? note("This run has no artifacts.", "muted", "artifacts-empty") : note("(empty)"));
        return;
      }
      replace(into, files.map((f) => entry(f, depth)));
    } catch (e) {
      replace(into, note(`Could not list artifacts: ${errorText(e)}`, "error"));
    }
  };

  const entry = (f: ArtifactFile, depth: number): HTMLElement => {
    const indent = `padding-left: ${depth * 18 + 6}px`;
    if (f.is_dir) {
      const children = h("div", { class: "artifact-children hidden" });
      let loaded = false;
      const toggle = h("span", { class: "twisty" }, "▸");
      const row = h(
        "div",
        {
          class: "artifact-row dir",
          style: indent,
          testid: "artifact-dir",
          data: { path: f.path },
          on: {
            click: () => {
              const open = children.classList.toggle("hidden") === false;
              toggle.textContent = open ? "▾" : "▸";
              if (open && !loaded) {
                loaded = true;
                void listing(f.path, depth + 1, children);
              }
            },
          },
        },
        toggle,
        h("span", { class: "artifact-name" }, `${baseName(f.path)}/`),
      );
      return h("div", null, row, children);
    }
    const url = artifactUrl(run.info.artifact_uri, f.path);
    const actions: Child[] = [];
    if (url) {
      const a = h("a", { href: url, class: "btn btn-small", testid: "artifact-download", attrs: { download: baseName(f.path) } }, "Download");
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        download(url, baseName(f.path));
      });
      actions.push(a);
      if (TEXT_EXT.test(f.path) && (f.file_size ?? 0) <= PREVIEW_LIMIT) {
        actions.push(
          button("View", () => {
            replace(preview, note(`Loading ${f.path}…`));
            getText(url).then(
              (text) => replace(preview, h("div", { class: "preview-head mono" }, f.path), h("pre", { class: "code" }, text)),
              (e) => replace(preview, note(`Could not read ${f.path}: ${errorText(e)}`, "error")),
            );
          }, { kind: "ghost", testid: "artifact-view" }),
        );
      }
    }
    return h(
      "div",
      { class: "artifact-row", style: indent, testid: "artifact-file", data: { path: f.path } },
      h("span", { class: "twisty" }),
      h("span", { class: "artifact-name" }, baseName(f.path)),
      h("span", { class: "muted small" }, fmtBytes(f.file_size)),
      h("span", { class: "artifact-actions" }, actions),
    );
  };

  const top = h("div");
  root.append(h("div", { class: "muted small mono" }, run.info.artifact_uri), top, preview);
  void listing("", 0, top);
  return root;
}

function kvTable(rows: Array<[string, string]>, testid: string, emptyText: string): HTMLElement {
  if (rows.length === 0) return note(emptyText);
  return h(
    "table",
    { class: "table table-compact", testid },
    h("tbody", null, rows.map(([k, v]) => h("tr", { data: { key: k } }, h("td", { class: "mono key" }, k), h("td", { class: "mono wrap" }, v)))),
  );
}

/** Metrics to plot first: those logged at several steps, else a few validation metrics. */
export function defaultCurves(metrics: Array<{ key: string; step: number }>): string[] {
  const stepped = metrics.filter((m) => m.step > 0).map((m) => m.key);
  return preferredMetrics(stepped.length > 0 ? stepped : metrics.map((m) => m.key), 3);
}

export async function runPage(ctx: PageContext): Promise<void> {
  const id = ctx.params[0] ?? "";
  const run = await api.getRun(id);
  if (!ctx.alive()) return;
  const info = run.info;
  const metrics = [...(run.data.metrics ?? [])].sort((a, b) => a.key.localeCompare(b.key));
  const params = [...(run.data.params ?? [])].sort((a, b) => a.key.localeCompare(b.key));
  const tags = [...(run.data.tags ?? [])].sort((a, b) => a.key.localeCompare(b.key));
  const userTags = tags.filter((t) => !t.key.startsWith("mlflow.") && !t.key.startsWith("keel."));
  const systemTags = tags.filter((t) => t.key.startsWith("mlflow.") || t.key.startsWith("keel."));

  ctx.root.append(
    pageHeader(
      [runName(run), " ", badge(info.status, statusTone(info.status), "run-status")],
      h("span", { class: "mono" }, info.run_id),
      h("a", { class: "btn", href: href("experiments", [], { e: info.experiment_id }) }, "Experiment runs"),
    ),
  );

  const versionsBox = h("div", null, note("Loading…"));
  const overview = card(
    "Overview",
    [
      facts([
        ["Experiment", h("a", { href: href("experiments", [], { e: info.experiment_id }) }, `#${info.experiment_id}`)],
        ["Started", fmtTime(info.start_time)],
        ["Ended", fmtTime(info.end_time)],
        ["Duration", fmtDuration(info.end_time && info.start_time ? info.end_time - info.start_time : null)],
        ["User", info.user_id ?? ""],
        ["Source", tags.find((t) => t.key === "mlflow.source.name")?.value ?? ""],
        ["Lifecycle", info.lifecycle_stage],
      ]),
      h("h3", null, "Registered as"),
      versionsBox,
    ],
    { testid: "run-overview" },
  );

  // Metric curves: the chosen keys (default: a few validation metrics).
  const chosen = new Set<string>(ctx.query.get("metrics")?.split(",").filter((k) => metrics.some((m) => m.key === k)) ?? defaultCurves(metrics));
  const chartBox = h("div", { class: "chart-box" });
  let chart: Chart | null = null;
  ctx.onCleanup(() => chart?.destroy());
  const drawChart = async () => {
    chart?.destroy();
    chart = null;
    const keys = [...chosen];
    if (keys.length === 0) {
      replace(chartBox, note("Tick metrics in the table to plot their history."));
      return;
    }
    replace(chartBox, note("Loading metric history…"));
    try {
      const c = await metricCurves([{ id: info.run_id, name: runName(run) }], keys, "metric-chart");
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

  const metricsTable =
    metrics.length === 0
      ? note("No metrics logged.")
      : h(
          "table",
          { class: "table table-compact", testid: "run-metrics" },
          h("thead", null, h("tr", null, h("th", { class: "check-col" }, "Plot"), h("th", null, "Metric"), h("th", { class: "num" }, "Latest"), h("th", { class: "num" }, "Step"))),
          h(
            "tbody",
            null,
            metrics.map((m) =>
              h(
                "tr",
                { data: { key: m.key } },
                h(
                  "td",
                  { class: "check-col" },
                  h("input", {
                    type: "checkbox",
                    checked: chosen.has(m.key),
                    testid: "metric-plot",
                    on: {
                      change: (ev) => {
                        if ((ev.target as HTMLInputElement).checked) chosen.add(m.key);
                        else chosen.delete(m.key);
                        ctx.setQuery({ metrics: [...chosen].join(",") });
                        void drawChart();
                      },
                    },
                  }),
                ),
                h("td", { class: "mono" }, m.key),
                h("td", { class: "num" }, fmtNum(metricOf(run, m.key))),
                h("td", { class: "num" }, String(m.step)),
              ),
            ),
          ),
        );

  const inputs = run.inputs?.dataset_inputs ?? [];
  const inputsBody =
    inputs.length === 0
      ? note("No dataset inputs logged.")
      : h(
          "table",
          { class: "table table-compact" },
          h("thead", null, h("tr", null, h("th", null, "Dataset"), h("th", null, "Digest"), h("th", null, "Context"), h("th", null, "Source"))),
          h(
            "tbody",
            null,
            inputs.map((d) => {
              let source = d.dataset.source ?? "";
              try {
                const parsed = JSON.parse(source) as { uri?: string };
                if (parsed.uri) source = parsed.uri;
              } catch {
                // Keep the raw source.
              }
              return h(
                "tr",
                null,
                h("td", null, d.dataset.name),
                h("td", { class: "mono" }, d.dataset.digest),
                h("td", null, d.tags?.find((t) => t.key === "mlflow.data.context")?.value ?? ""),
                h("td", { class: "mono wrap" }, source),
              );
            }),
          ),
        );

  ctx.root.append(
    h(
      "div",
      { class: "grid-2" },
      overview,
      card("Metrics", metricsTable, { testid: "metrics-card" }),
      card("Metric curves", chartBox, { testid: "curves-card", class: "span-2" }),
      card(`Params (${params.length})`, kvTable(params.map((p) => [p.key, p.value]), "run-params", "No params logged."), { testid: "params-card" }),
      card(
        "Tags",
        [
          kvTable(userTags.map((t) => [t.key, t.value]), "run-tags", "No user tags."),
          systemTags.length > 0
            ? h("details", { class: "details" }, h("summary", null, `System tags (${systemTags.length})`), kvTable(systemTags.map((t) => [t.key, t.value]), "run-system-tags", ""))
            : null,
        ],
        { testid: "tags-card" },
      ),
      card("Dataset inputs", inputsBody, { class: "span-2" }),
      card("Artifacts", artifactsBrowser(run), { testid: "artifacts-card", class: "span-2" }),
    ),
  );

  void drawChart();
  try {
    const versions = (await api.searchVersions(`run_id = ${quote(info.run_id)}`, 50)).model_versions ?? [];
    if (!ctx.alive()) return;
    replace(
      versionsBox,
      versions.length === 0
        ? note("Not registered.")
        : h(
            "div",
            { class: "chips" },
            versions.map((v) =>
              h("a", { class: "chip", href: href("models", [v.name]) }, `${v.name} v${v.version}`, (v.aliases ?? []).map((a) => h("span", { class: "chip-tag" }, `@${a}`))),
            ),
          ),
    );
  } catch (e) {
    replace(versionsBox, note(errorText(e), "error"));
  }
}
