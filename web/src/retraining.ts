// #/retraining: the server's retraining policies (GET /api/2.0/keel/retrain/policies:
// schedule, next run, triggers, gate, state), then the retraining jobs
// (GET /api/2.0/keel/retrain/jobs) with their trigger, status, gate decision
// and message; a job can be queued by hand when the server runs a policy.

import { api, ApiError, canWrite, type GateDecision, type RetrainJob, type RetrainPolicies, type RetrainPolicy } from "./api";
import { confirmDialog } from "./dialog";
import { badge, button, card, type Child, errorText, facts, h, note, pageHeader, replace, type Tone } from "./dom";
import { fmtDuration, fmtNum, fmtRelative, fmtSpan, fmtTime, shortId } from "./format";
import { href, type PageContext } from "./router";

function statusTone(status: string): Tone {
  switch (status) {
    case "promoted":
      return "ok";
    case "failed":
    case "rolled_back":
      return "bad";
    case "rejected":
    case "cancelled":
    case "superseded":
    case "queued":
      return "warn";
    case "running":
    case "shadow":
      return "info";
    default:
      return "muted";
  }
}

function stateTone(state: string): Tone {
  return state === "running" ? "info" : state === "queued" ? "warn" : "muted";
}

/** The gate's rule in words: what a challenger must do to pass. */
export function gateRule(g: RetrainPolicy["gate"]): string {
  const parts = [`${g.metric} better than the champion's by at least ${fmtNum(g.min_delta)}`];
  parts.push(`no other metric worse by more than ${fmtNum(g.max_regression)}`);
  parts.push(`at least ${fmtNum(g.min_rows)} labelled holdout rows`);
  return parts.join("; ");
}

function policiesView(p: RetrainPolicies | null): HTMLElement {
  if (p === null) {
    return note("This server does not report its retraining policies (no GET /api/2.0/keel/retrain/policies).", "muted", "policies-unknown");
  }
  if (!p.scheduler) {
    return note(
      "This server runs no retraining policies: no schedule, alert trigger or continuous update runs here, and jobs cannot be queued from this page. Start keel server with --retrain-policies FILE to run them. The jobs below were run by keel retrain.",
      "muted",
      "policies-none",
    );
  }
  if (p.policies.length === 0) return note("The server's policies file holds no policy.", "muted", "policies-none");
  const now = Date.now();
  const rows = [...p.policies].sort((a, b) => a.model.localeCompare(b.model));
  // Replicas on one store: only the holder of the scheduler lease fires schedules.
  const role =
    p.leader === undefined
      ? null
      : h(
          "p",
          { class: "small", testid: "scheduler-role", data: { leader: String(p.leader) } },
          p.leader
            ? [badge("leader", "ok"), " This replica fires the schedules, continuous updates, shadow decisions and watches."]
            : [badge("standby", "muted"), " Another replica on this store holds the scheduler lease and fires the schedules; this one takes over if that one stops. The times below are this replica's view."],
        );
  return h(
    "div",
    null,
    role,
    h(
      "table",
      { class: "table", testid: "policies-table" },
      h(
        "thead",
        null,
        h("tr", null, h("th", null, "Model"), h("th", null, "Schedule"), h("th", null, "Next run"), h("th", null, "Alert triggers"), h("th", null, "Continuous"), h("th", null, "Gate"), h("th", null, "Shadow / watch"), h("th", null, "Promotes"), h("th", null, "State")),
      ),
      h(
        "tbody",
        null,
        rows.map((r) =>
          h(
            "tr",
            { testid: "policy-row", data: { model: r.model, state: r.state } },
            h("td", null, h("a", { href: href("models", [r.model]), class: "strong" }, r.model), r.source ? h("div", { class: "muted small mono wrap", title: "policy file" }, r.source) : null),
            h(
              "td",
              { testid: "policy-schedule" },
              r.schedule
                ? [h("span", { class: "mono" }, r.schedule), " ", h("span", { class: "muted small" }, r.timezone), h("div", { class: "muted small" }, `missed runs: ${r.missed}`)]
                : h("span", { class: "muted" }, "no schedule"),
            ),
            h(
              "td",
              { class: "nowrap", testid: "policy-next", data: { nextMs: String(r.next_slot_ms) } },
              r.next_slot_ms >= 0
                ? [h("span", { title: new Date(r.next_slot_ms).toISOString() }, fmtTime(r.next_slot_ms)), h("div", { class: "muted small" }, fmtRelative(r.next_slot_ms, now))]
                : h("span", { class: "muted" }, "—"),
              r.last_slot_ms >= 0 ? h("div", { class: "muted small" }, `last: ${fmtTime(r.last_slot_ms)}`) : null,
            ),
            h(
              "td",
              { testid: "policy-alerts" },
              r.on_alerts.length > 0 ? h("div", { class: "chips" }, r.on_alerts.map((a) => h("span", { class: "chip mono" }, a))) : h("span", { class: "muted" }, "—"),
            ),
            h(
              "td",
              { class: "nowrap", testid: "policy-continuous" },
              r.continuous_every_ms > 0
                ? [`every ${fmtSpan(r.continuous_every_ms)}`, r.next_continuous_ms >= 0 ? h("div", { class: "muted small" }, `next ${fmtRelative(r.next_continuous_ms, now)}`) : null]
                : h("span", { class: "muted" }, "—"),
            ),
            h("td", { class: "small", testid: "policy-gate", title: gateRule(r.gate) }, h("span", { class: "mono" }, r.gate.metric), ` +${fmtNum(r.gate.min_delta)}`, h("div", { class: "muted" }, `max regression ${fmtNum(r.gate.max_regression)}, ≥ ${fmtNum(r.gate.min_rows)} rows`)),
            h(
              "td",
              { class: "nowrap small", testid: "policy-phases" },
              r.shadow_ms > 0 ? h("div", null, `shadow ${fmtSpan(r.shadow_ms)}`) : h("div", { class: "muted" }, "no shadow"),
              r.watch_ms > 0 ? h("div", null, `watch ${fmtSpan(r.watch_ms)}`) : h("div", { class: "muted" }, "no watch"),
            ),
            h("td", null, h("span", { class: "chip" }, `@${r.promote}`)),
            h("td", { testid: "policy-state" }, badge(r.state, stateTone(r.state))),
          ),
        ),
      ),
    ),
  );
}

function gateSummary(g: GateDecision | null): Child {
  if (!g) return h("span", { class: "muted" }, "—");
  return h(
    "div",
    null,
    badge(g.passed ? "passed" : "failed", g.passed ? "ok" : "bad"),
    " ",
    h("span", { class: "mono small" }, `${g.metric} ${fmtNum(g.champion)} → ${fmtNum(g.challenger)}`),
  );
}

function gateTable(g: GateDecision): HTMLElement {
  return h(
    "div",
    null,
    h("p", { class: "small" }, g.reason, ` (${g.holdout_rows} holdout rows${g.non_finite ? `, ${g.non_finite} non-finite outputs` : ""})`),
    g.metrics.length > 0
      ? h(
          "table",
          { class: "table table-compact" },
          h("thead", null, h("tr", null, h("th", null, "Metric"), h("th", { class: "num" }, "Champion"), h("th", { class: "num" }, "Challenger"))),
          h("tbody", null, g.metrics.map((m) => h("tr", { class: m.name === g.metric ? "strong" : "" }, h("td", null, m.name), h("td", { class: "num" }, fmtNum(m.champion)), h("td", { class: "num" }, fmtNum(m.challenger))))),
        )
      : null,
  );
}

function jobDetails(j: RetrainJob): HTMLElement {
  return h(
    "div",
    { class: "job-details" },
    facts([
      ["Actor", j.actor || "—"],
      ["Run", j.run_id ? h("a", { href: href("runs", [j.run_id]) }, shortId(j.run_id)) : "—"],
      ["Alias", j.promote_alias || "—"],
      ["Host", j.host ? `${j.host} (pid ${j.pid})` : "—"],
      ["Message", j.message || "—"],
    ]),
    j.data.length > 0
      ? h(
          "table",
          { class: "table table-compact" },
          h("thead", null, h("tr", null, h("th", null, "Data"), h("th", null, "Source"), h("th", { class: "num" }, "Rows"), h("th", null, "Time range"), h("th", null, "SHA-256"))),
          h(
            "tbody",
            null,
            j.data.map((d) =>
              h(
                "tr",
                null,
                h("td", null, d.role),
                h("td", { class: "mono wrap" }, d.path),
                h("td", { class: "num" }, fmtNum(d.rows)),
                h("td", { class: "nowrap small" }, d.from_ms || d.to_ms ? `${fmtTime(d.from_ms)} → ${fmtTime(d.to_ms)}` : "—"),
                h("td", { class: "mono small" }, d.sha256 ? d.sha256.slice(0, 12) : ""),
              ),
            ),
          ),
        )
      : null,
    j.gate ? [h("h3", null, "Gate (holdout)"), gateTable(j.gate)] : null,
    j.shadow
      ? [
          h("h3", null, "Shadow phase"),
          facts([
            ["Verdict", [badge(j.shadow.passed ? "passed" : "not passed", j.shadow.passed ? "ok" : "warn"), " ", j.shadow.reason]],
            ["Period", `${fmtTime(j.shadow.started_ms)} → ${fmtTime(j.shadow.ends_ms)}`],
            ["Requests", `${fmtNum(j.shadow.requests)} (${fmtNum(j.shadow.errors)} errors, ${fmtNum(j.shadow.labeled_rows)} labelled)`],
            ["Agreement", fmtNum(j.shadow.agreement)],
          ]),
          j.shadow.live ? gateTable(j.shadow.live) : null,
        ]
      : null,
    j.log && j.log.length > 0
      ? [
          h("h3", null, "Log"),
          h(
            "pre",
            { class: "code job-log", testid: "job-log" },
            j.log.map((l) => `${fmtTime(l.time_ms)}  ${l.text}`).join("\n"),
          ),
        ]
      : null,
  );
}

export async function retrainingPage(ctx: PageContext): Promise<void> {
  let model = ctx.query.get("model") ?? "";
  const writable = canWrite(ctx.user);
  ctx.root.append(pageHeader("Retraining", "Jobs of the server's retraining policies and of keel retrain: trigger, status and the champion/challenger gate."));
  const flash = h("div", { class: "flash" });
  const policiesBox = h("div", { class: "table-wrap" }, note("Loading…"));
  const tableBox = h("div", { class: "table-wrap" }, note("Loading…"));
  const modelSelect = h("select", { class: "select", testid: "retrain-model" });
  const trigger = button("Retrain now…", () => void retrainNow(), { testid: "retrain-now", disabled: true });
  const refresh = button("Refresh", () => void load(), { testid: "retrain-refresh" });
  const actions = h("div", { class: "toolbar" }, h("label", { class: "inline-field" }, "Model", modelSelect), writable ? trigger : null);
  ctx.root.append(
    flash,
    h("div", { class: "stack" }, card("Policies", policiesBox, { testid: "policies-card", actions: refresh }), card("Jobs", [actions, tableBox], { testid: "retrain-card" })),
  );
  let policies: RetrainPolicies | null = null;

  const retrainNow = async () => {
    if (!model) return;
    const r = await confirmDialog({
      title: "Retrain now",
      message: `Queue a retraining job of ${model} on the server (its policy decides the data and the gate; a passing challenger takes the policy's alias).`,
      confirmText: "Queue job",
    });
    if (!r.ok) return;
    try {
      await api.triggerRetrain(model);
      replace(flash, note(`Queued a retraining job of ${model}.`, "muted"));
    } catch (e) {
      replace(flash, note(`Not queued: ${errorText(e)}`, "error"));
    }
    await load();
  };

  modelSelect.addEventListener("change", () => {
    model = modelSelect.value;
    ctx.setQuery({ model });
    void load();
  });

  let models: string[] = [];
  const load = async () => {
    try {
      const [jobs, registered, pol] = await Promise.all([
        api.retrainJobs(model || undefined, 200),
        models.length ? Promise.resolve(null) : api.searchModels("", 200),
        api.retrainPolicies().catch((e: unknown) => {
          if (e instanceof ApiError && e.status === 404) return null;
          throw e;
        }),
      ]);
      if (!ctx.alive()) return;
      policies = pol;
      replace(policiesBox, policiesView(policies));
      if (registered) models = (registered.registered_models ?? []).map((m) => m.name).sort();
      replace(modelSelect, h("option", { value: "" }, "all models"), models.map((m) => h("option", { value: m }, m)));
      modelSelect.value = model;
      const hasPolicy = !!policies?.scheduler && policies.policies.some((p) => p.model === model);
      trigger.disabled = !model || !hasPolicy;
      trigger.title = !model ? "choose a model first" : hasPolicy ? "" : `the server runs no policy for ${model}`;
      if (jobs.length === 0) {
        replace(tableBox, note("No retraining jobs recorded.", "muted", "retrain-empty"));
        return;
      }
      replace(
        tableBox,
        h(
          "table",
          { class: "table", testid: "retrain-table" },
          h("thead", null, h("tr", null, h("th", null, "Job"), h("th", null, "Model"), h("th", null, "Trigger"), h("th", null, "Status"), h("th", null, "Started"), h("th", null, "Took"), h("th", null, "Champion → challenger"), h("th", null, "Gate"), h("th", null, "Message"))),
          h(
            "tbody",
            null,
            jobs.flatMap((j) => {
              const details = h("tr", { class: "details-row hidden" }, h("td", { colspan: 9 }, jobDetails(j)));
              const row = h(
                "tr",
                {
                  class: "clickable",
                  testid: "retrain-row",
                  data: { job: String(j.id), status: j.status },
                  on: { click: () => details.classList.toggle("hidden") },
                },
                h("td", null, `#${j.id}`),
                h("td", null, h("a", { href: href("models", [j.model]) }, j.model)),
                h("td", null, j.trigger),
                h("td", null, badge(j.status, statusTone(j.status))),
                h("td", { class: "nowrap" }, fmtTime(j.started_ms)),
                h("td", { class: "nowrap" }, j.finished_ms ? fmtDuration(j.finished_ms - j.started_ms) : "—"),
                h("td", { class: "nowrap" }, `${j.champion_version ? `v${j.champion_version}` : "—"} → ${j.challenger_version ? `v${j.challenger_version}` : "—"}`),
                h("td", null, gateSummary(j.gate)),
                h("td", { class: "wrap small" }, j.message),
              );
              return [row, details];
            }),
          ),
        ),
        h("p", { class: "muted small" }, "Click a job for its data versions, the gate's metrics and its log."),
      );
    } catch (e) {
      replace(tableBox, note(`Could not load jobs: ${errorText(e)}`, "error"));
    }
  };
  await load();
}
