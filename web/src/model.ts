// #/models/<name>: a model's aliases (promote, roll back), versions with
// their run, data version (the run's dataset inputs) and metrics, the gate
// decisions of the model's retraining jobs, and the full alias history.

import { type AliasChange, api, canWrite, type DatasetInput, type ModelVersion, quote, type RegisteredModel, type RetrainJob, type Run } from "./api";
import { confirmDialog } from "./dialog";
import { badge, button, card, type Child, errorText, h, note, pageHeader, replace, type Tone } from "./dom";
import { metricOf, preferredMetrics, runName } from "./experiments";
import { fmtNum, fmtTime } from "./format";
import { href, type PageContext } from "./router";

const VERSIONS_PAGE = 25;
const JOBS_LIMIT = 50;

/** A run's dataset inputs: name, digest (the data version) and context (train, validation, ...). */
function datasetCell(run: Run | undefined): Child {
  const inputs: DatasetInput[] = run?.inputs?.dataset_inputs ?? [];
  if (inputs.length === 0) return h("span", { class: "muted" }, "—");
  const shown = inputs.slice(0, 3);
  return h(
    "div",
    { class: "datasets" },
    shown.map((d) => {
      const context = d.tags?.find((t) => t.key === "mlflow.data.context")?.value;
      return h(
        "div",
        { class: "dataset", testid: "version-dataset", data: { digest: d.dataset.digest, name: d.dataset.name }, title: `${d.dataset.source_type ?? ""} ${d.dataset.source ?? ""}`.trim() },
        h("div", { class: "wrap" }, d.dataset.name),
        h("div", { class: "muted small nowrap" }, h("span", { class: "mono", title: "digest (data version)" }, d.dataset.digest), context ? ` ${context}` : ""),
      );
    }),
    inputs.length > shown.length ? h("div", { class: "muted small" }, `+${inputs.length - shown.length} more`) : null,
  );
}

function jobTone(status: string): Tone {
  return status === "promoted" ? "ok" : status === "failed" || status === "rolled_back" ? "bad" : status === "running" || status === "shadow" ? "info" : "warn";
}

/** The gate decisions of the model's retraining jobs, newest first. */
function gateDecisions(jobs: RetrainJob[]): HTMLElement {
  if (jobs.length === 0) return note("No retraining job of this model is recorded.", "muted", "gates-empty");
  return h(
    "div",
    null,
    h(
      "table",
      { class: "table table-compact", testid: "gates-table" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          h("th", null, "Job"),
          h("th", null, "Started"),
          h("th", null, "Trigger"),
          h("th", null, "Versions"),
          h("th", null, "Metric"),
          h("th", { class: "num" }, "Champion"),
          h("th", { class: "num" }, "Challenger"),
          h("th", null, "Gate"),
          h("th", null, "Outcome"),
          h("th", null, "Reason"),
        ),
      ),
      h(
        "tbody",
        null,
        jobs.map((j) => {
          const g = j.gate;
          const decision = g ? (g.passed ? "passed" : "failed") : "none";
          return h(
            "tr",
            { testid: "gate-row", data: { job: String(j.id), status: j.status, decision } },
            h("td", null, h("a", { href: href("retraining", [], { model: j.model }) }, `#${j.id}`)),
            h("td", { class: "nowrap" }, fmtTime(j.started_ms)),
            h("td", null, j.trigger, j.actor ? h("div", { class: "muted small" }, j.actor) : null),
            h("td", { class: "nowrap" }, `${j.champion_version ? `v${j.champion_version}` : "—"} → ${j.challenger_version ? `v${j.challenger_version}` : "—"}`),
            h("td", { class: "mono" }, g ? g.metric : "—"),
            h("td", { class: "num", testid: "gate-champion" }, g ? fmtNum(g.champion) : "—"),
            h("td", { class: "num", testid: "gate-challenger" }, g ? fmtNum(g.challenger) : "—"),
            h("td", { testid: "gate-decision" }, g ? badge(g.passed ? "passed" : "failed", g.passed ? "ok" : "bad") : h("span", { class: "muted" }, "not reached")),
            h("td", null, badge(j.status, jobTone(j.status))),
            h("td", { class: "wrap small" }, g ? [g.reason, g.holdout_rows ? ` (${fmtNum(g.holdout_rows)} holdout rows)` : ""] : j.message),
          );
        }),
      ),
    ),
  );
}

/** "alias champion of churn: version 2 -> version 1" — exactly what a change does. */
export function changeText(model: string, alias: string, from: string | undefined, to: string): string {
  return `alias ${alias} of ${model}: ${from ? `version ${from}` : "(not set)"} -> version ${to}`;
}

/** Where a rollback of `alias` would go: the version the newest history entry moved it from. */
function rollbackTarget(history: AliasChange[], alias: string, current: string): string | null {
  const last = history.filter((c) => c.alias === alias).sort((a, b) => b.id - a.id)[0];
  if (!last || last.to_version !== current || !last.from_version) return null;
  return last.from_version;
}

export async function modelPage(ctx: PageContext): Promise<void> {
  const name = ctx.params[0] ?? "";
  const writable = canWrite(ctx.user);
  let tokens: Array<string | undefined> = [undefined];
  let pageIndex = 0;

  const status = h("div", { class: "flash", testid: "model-flash" });
  const aliasesBox = h("div", null, note("Loading…"));
  const versionsBox = h("div", { class: "table-wrap" }, note("Loading…"));
  const versionsPager = h("div", { class: "pager" });
  const historyBox = h("div", { class: "table-wrap" }, note("Loading…"));
  const gatesBox = h("div", { class: "table-wrap" }, note("Loading…"));
  let model: RegisteredModel | null = null;
  let history: AliasChange[] = [];
  let jobs: RetrainJob[] = [];

  ctx.root.append(
    pageHeader(
      name,
      "Registered model",
      [h("a", { class: "btn", href: href("monitoring", [name]) }, "Monitoring"), h("a", { class: "btn btn-ghost", href: "#/models" }, "All models")],
    ),
    status,
    h(
      "div",
      { class: "stack" },
      card("Aliases", aliasesBox, { testid: "aliases-card" }),
      card("Versions", [versionsBox, versionsPager], { testid: "versions-card" }),
      card("Retraining gate decisions", gatesBox, { testid: "gates-card", actions: h("a", { href: href("retraining", [], { model: name }), class: "small" }, "Retraining") }),
      card("Alias history", historyBox, { testid: "history-card" }),
    ),
  );

  const flash = (text: string, tone: "ok" | "error") => {
    replace(status, h("div", { class: `note note-${tone === "ok" ? "ok" : "error"}`, testid: tone === "ok" ? "flash-ok" : "flash-error" }, text));
  };

  const currentOf = (alias: string): string | undefined => model?.aliases?.find((a) => a.alias === alias)?.version;

  const promote = async (version: string) => {
    const known = [...new Set((model?.aliases ?? []).map((a) => a.alias).concat(["champion"]))].sort();
    const aliasInput = h("input", {
      type: "text",
      class: "input",
      value: "champion",
      testid: "promote-alias",
      attrs: { list: "alias-options", spellcheck: "false" },
    });
    const message = h("span", { testid: "promote-change" });
    const update = () => {
      const alias = aliasInput.value.trim();
      const from = currentOf(alias);
      message.textContent = alias ? changeText(name, alias, from, version) + (from === version ? " (no change)" : "") : "Name an alias.";
      const ok = aliasInput.closest("dialog")?.querySelector<HTMLButtonElement>("[data-testid=confirm-ok]");
      if (ok) ok.disabled = !alias || from === version;
    };
    aliasInput.addEventListener("input", update);
    const pending = confirmDialog({
      title: `Promote version ${version}`,
      extra: h(
        "label",
        { class: "field" },
        h("span", null, "Alias"),
        aliasInput,
        h("datalist", { attrs: { id: "alias-options" } }, known.map((a) => h("option", { value: a }))),
      ),
      message: h("div", null, h("div", { class: "muted small" }, "This will change:"), h("div", { class: "change-line" }, message)),
      confirmText: "Promote",
      reason: { label: "Reason (recorded in the alias history)", placeholder: "e.g. AUC +0.01 on last week" },
    });
    update(); // the dialog is open now: fill in the change and the button's state
    const result = await pending;
    if (!result.ok) return;
    const alias = aliasInput.value.trim();
    try {
      await api.setAlias(name, alias, version, result.reason);
      flash(`Done: ${changeText(name, alias, currentOf(alias), version)}`, "ok");
    } catch (e) {
      flash(`Promotion refused: ${errorText(e)}`, "error");
    }
    await load();
  };

  const rollback = async (alias: string, current: string, target: string) => {
    const result = await confirmDialog({
      title: `Roll back ${name}@${alias}`,
      message: h("div", null, h("div", { class: "muted small" }, "This will change:"), h("div", { class: "change-line", testid: "rollback-change" }, changeText(name, alias, current, target))),
      confirmText: "Roll back",
      danger: true,
      reason: { label: "Reason (recorded in the alias history)", placeholder: "rollback" },
    });
    if (!result.ok) return;
    try {
      const change = await api.rollback(name, alias, result.reason);
      flash(`Done: ${changeText(name, alias, change.from_version, change.to_version ?? target)}`, "ok");
    } catch (e) {
      flash(`Rollback refused: ${errorText(e)}`, "error");
    }
    await load();
  };

  const renderAliases = () => {
    const aliases = [...(model?.aliases ?? [])].sort((a, b) => a.alias.localeCompare(b.alias));
    if (aliases.length === 0) {
      replace(aliasesBox, note("No aliases yet. Promote a version to set one."));
      return;
    }
    replace(
      aliasesBox,
      h(
        "table",
        { class: "table", testid: "aliases-table" },
        h("thead", null, h("tr", null, h("th", null, "Alias"), h("th", null, "Version"), h("th", null, "Last change"), h("th", null, ""))),
        h(
          "tbody",
          null,
          aliases.map((a) => {
            const last = history.filter((c) => c.alias === a.alias).sort((x, y) => y.id - x.id)[0];
            const target = rollbackTarget(history, a.alias, a.version);
            return h(
              "tr",
              { testid: "alias-row", data: { alias: a.alias, version: a.version } },
              h("td", null, h("span", { class: "chip" }, `@${a.alias}`)),
              h("td", { testid: "alias-version" }, `version ${a.version}`),
              h("td", { class: "small" }, last ? [fmtTime(last.time), " by ", last.actor || "—", last.reason ? ` (${last.reason})` : ""] : "—"),
              h(
                "td",
                { class: "actions" },
                writable
                  ? button(target ? `Roll back to v${target}` : "Roll back", () => {
                      if (target) void rollback(a.alias, a.version, target);
                    }, {
                      kind: "danger",
                      testid: `rollback-${a.alias}`,
                      disabled: !target,
                      ...(target ? {} : { title: "no previous version recorded for this alias" }),
                    })
                  : null,
              ),
            );
          }),
        ),
      ),
    );
  };

  const renderHistory = () => {
    if (history.length === 0) {
      replace(historyBox, note("No alias changes recorded."));
      return;
    }
    const rows = [...history].sort((a, b) => b.id - a.id);
    replace(
      historyBox,
      h(
        "table",
        { class: "table table-compact", testid: "alias-history" },
        h("thead", null, h("tr", null, h("th", null, "When"), h("th", null, "Alias"), h("th", null, "Change"), h("th", null, "Who"), h("th", null, "Why"))),
        h(
          "tbody",
          null,
          rows.map((c) =>
            h(
              "tr",
              { testid: "history-row" },
              h("td", { class: "nowrap" }, fmtTime(c.time)),
              h("td", null, `@${c.alias}`),
              h("td", { class: "nowrap" }, `${c.from_version ? `v${c.from_version}` : "—"} → ${c.to_version ? `v${c.to_version}` : "(removed)"}`),
              h("td", null, c.actor || "—"),
              h("td", { class: "wrap" }, c.reason),
            ),
          ),
        ),
      ),
    );
  };

  const renderVersions = (versions: ModelVersion[], runs: Map<string, Run>, next: string | undefined) => {
    const metricKeys = preferredMetrics([...new Set([...runs.values()].flatMap((r) => (r.data.metrics ?? []).map((m) => m.key)))], 3);
    if (versions.length === 0) {
      replace(versionsBox, note("No versions."));
    } else {
      replace(
        versionsBox,
        h(
          "table",
          { class: "table", testid: "versions-table" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", null, "Version"),
              h("th", null, "Aliases"),
              h("th", null, "Created"),
              h("th", null, "Status"),
              h("th", null, "Run"),
              h("th", null, "Data"),
              metricKeys.map((k) => h("th", { class: "num" }, k)),
              h("th", null, "Retraining"),
              h("th", null, ""),
            ),
          ),
          h(
            "tbody",
            null,
            versions.map((v) => {
              const run = v.run_id ? runs.get(v.run_id) : undefined;
              return h(
                "tr",
                { testid: "version-row", data: { version: v.version } },
                h("td", { class: "strong" }, `v${v.version}`),
                h("td", null, h("div", { class: "chips" }, (v.aliases ?? []).map((a) => h("span", { class: "chip" }, `@${a}`)))),
                h("td", { class: "nowrap" }, fmtTime(v.creation_timestamp)),
                h("td", null, badge(v.status ?? "", v.status === "READY" ? "ok" : v.status === "FAILED_REGISTRATION" ? "bad" : "muted")),
                h("td", { class: "nowrap" }, v.run_id ? h("a", { href: href("runs", [v.run_id]) }, run ? runName(run) : v.run_id.slice(0, 8)) : "—"),
                h("td", { testid: "version-data" }, datasetCell(run)),
                metricKeys.map((k) => h("td", { class: "num" }, run ? fmtNum(metricOf(run, k)) : "")),
                h("td", { class: "small" }, jobs.filter((j) => j.challenger_version === v.version).map((j) => h("div", { class: "nowrap" }, `job #${j.id} `, badge(j.status, jobTone(j.status))))),
                h(
                  "td",
                  { class: "actions" },
                  writable ? button("Promote…", () => void promote(v.version), { testid: `promote-${v.version}` }) : null,
                ),
              );
            }),
          ),
        ),
      );
    }
    if (pageIndex === 0 && !next) {
      replace(versionsPager);
      return;
    }
    replace(
      versionsPager,
      button("← Newer", () => {
        pageIndex--;
        void loadVersions();
      }, { disabled: pageIndex === 0 }),
      button("Older →", () => {
        tokens[pageIndex + 1] = next;
        pageIndex++;
        void loadVersions();
      }, { disabled: !next }),
    );
  };

  const loadVersions = async () => {
    try {
      const page = await api.searchVersions(`name = ${quote(name)}`, VERSIONS_PAGE, tokens[pageIndex]);
      const versions = page.model_versions ?? [];
      const runIds = [...new Set(versions.map((v) => v.run_id).filter((id): id is string => !!id))];
      const runs = new Map<string, Run>();
      await Promise.all(
        runIds.map(async (id) => {
          try {
            runs.set(id, await api.getRun(id));
          } catch {
            // A deleted run: the version still shows.
          }
        }),
      );
      if (!ctx.alive()) return;
      renderVersions(versions, runs, page.next_page_token || undefined);
    } catch (e) {
      replace(versionsBox, note(`Could not load versions: ${errorText(e)}`, "error"));
    }
  };

  const loadJobs = async () => {
    try {
      jobs = await api.retrainJobs(name, JOBS_LIMIT);
      if (!ctx.alive()) return;
      replace(gatesBox, gateDecisions(jobs));
    } catch (e) {
      jobs = [];
      replace(gatesBox, note(`Could not load retraining jobs: ${errorText(e)}`, "error"));
    }
  };

  const load = async () => {
    const [m, hist] = await Promise.all([api.getModel(name), api.aliasHistory(name), loadJobs()]);
    if (!ctx.alive()) return;
    model = m;
    history = hist;
    renderAliases();
    renderHistory();
    await loadVersions();
  };

  await load();
}
