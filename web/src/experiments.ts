// #/experiments: experiments on the left, their runs on the right. Search,
// order and paging are the server's (runs/search with filter, order_by,
// max_results, page_token); the page never loads more than one page of runs.

import { api, ApiError, type Experiment, keyRef, num, type Run } from "./api";
import { badge, button, card, clear, errorText, h, note, pageHeader, replace, type Tone } from "./dom";
import { fmtDuration, fmtNum, fmtTime, shortId } from "./format";
import { href, type PageContext } from "./router";

/** A chosen column: a param or a metric. */
interface Column {
  kind: "p" | "m";
  key: string;
}

const COLS_KEY = "keel.runs.columns";
const PAGE_SIZES = [50, 100];

function parseColumns(text: string | null): Column[] | null {
  if (text === null) return null;
  const out: Column[] = [];
  for (const part of text.split(",")) {
    const m = /^([pm]):(.+)$/.exec(part);
    if (m && m[1] && m[2]) out.push({ kind: m[1] as "p" | "m", key: decodeURIComponent(m[2]) });
  }
  return out;
}

function columnsText(cols: Column[]): string {
  return cols.map((c) => `${c.kind}:${encodeURIComponent(c.key)}`).join(",");
}

export function statusTone(status: string): Tone {
  switch (status) {
    case "FINISHED":
      return "ok";
    case "FAILED":
    case "KILLED":
      return "bad";
    case "RUNNING":
    case "SCHEDULED":
      return "info";
    default:
      return "muted";
  }
}

export function paramOf(run: Run, key: string): string | undefined {
  return run.data.params?.find((p) => p.key === key)?.value;
}

export function metricOf(run: Run, key: string): number | undefined {
  const m = run.data.metrics?.find((x) => x.key === key);
  return m ? num(m.value) : undefined;
}

export function runName(run: Run): string {
  return run.info.run_name || shortId(run.info.run_id);
}

/** Metric keys worth showing first: validation/test metrics when there are any. */
export function preferredMetrics(keys: string[], limit: number): string[] {
  const sorted = [...keys].sort();
  const held = sorted.filter((k) => /^(valid|val_|validation|test|eval)/.test(k));
  return (held.length > 0 ? held : sorted).slice(0, limit);
}

/** Default columns for a page of runs: preferred metrics, and params whose values differ. */
function defaultColumns(runs: Run[]): Column[] {
  const metricKeys = new Set<string>();
  const params = new Map<string, Set<string>>();
  for (const r of runs) {
    for (const m of r.data.metrics ?? []) metricKeys.add(m.key);
    for (const p of r.data.params ?? []) {
      const set = params.get(p.key) ?? new Set<string>();
      set.add(p.value);
      params.set(p.key, set);
    }
  }
  // A param differs when two runs hold different values, or only some runs have it.
  const holders = (key: string) => runs.filter((r) => r.data.params?.some((p) => p.key === key)).length;
  const varying = [...params.entries()].filter(([k, v]) => v.size > 1 || holders(k) < runs.length).map(([k]) => k);
  const visible = varying.filter((k) => !k.startsWith("keel.")).sort();
  return [
    ...visible.slice(0, 4).map((key): Column => ({ kind: "p", key })),
    ...preferredMetrics([...metricKeys], 4).map((key): Column => ({ kind: "m", key })),
  ];
}

function orderClause(col: Column | { attr: string }, desc: boolean): string {
  const ref = "attr" in col ? `attributes.${col.attr}` : keyRef(col.kind === "p" ? "params" : "metrics", col.key);
  return `${ref} ${desc ? "DESC" : "ASC"}`;
}

export async function experimentsPage(ctx: PageContext): Promise<void> {
  const q = ctx.query;
  let selectedIds: string[] = (q.get("e") ?? "").split(",").filter((s) => s.length > 0);
  let filter = q.get("filter") ?? "";
  let order = q.get("order") ?? "attributes.start_time DESC";
  let pageSize = PAGE_SIZES.includes(Number(q.get("n"))) ? Number(q.get("n")) : 50;
  // Chosen columns: from the address, else as last chosen for these experiments.
  const columnsKey = () => `${COLS_KEY}:${selectedIds.join(",")}`;
  const storedColumns = (): Column[] | null => {
    try {
      return parseColumns(window.localStorage.getItem(columnsKey()));
    } catch {
      return null;
    }
  };
  let columns: Column[] | null = parseColumns(q.get("cols")) ?? storedColumns();
  let columnsChosen = q.get("cols") !== null; // kept in the address once chosen
  // Paging: tokens of the pages before the current one.
  let tokens: Array<string | undefined> = [undefined];
  let pageIndex = 0;
  let nextToken: string | undefined;
  let runs: Run[] = [];
  const selectedRuns = new Map<string, string>(); // run_id -> display name
  let experiments: Experiment[] = [];

  ctx.root.append(pageHeader("Experiments & runs", "Search runs with the tracking API's filter grammar; click a column header to order by it on the server."));

  const expList = h("div", { class: "exp-list", testid: "experiments-list" }, note("Loading experiments…"));
  const filterInput = h("input", {
    type: "search",
    class: "input input-wide mono",
    testid: "runs-filter",
    value: filter,
    placeholder: "metrics.valid_auc > 0.85 and params.max_depth = '6'",
    attrs: { spellcheck: "false", "aria-label": "filter" },
  });
  const filterError = h("div", { class: "field-error", testid: "runs-filter-error" });
  const tableBox = h("div", { class: "table-wrap" });
  const pager = h("div", { class: "pager" });
  const compareButton = button("Compare", () => {
    if (selectedRuns.size >= 2) window.location.hash = href("compare", [], { runs: [...selectedRuns.keys()].join(",") });
  }, { kind: "primary", testid: "compare-button", disabled: true });
  const selectionInfo = h("span", { class: "muted small", testid: "selection-info" });
  const columnsButton = button("Columns", () => toggleColumnsPanel(), { testid: "columns-button" });
  const columnsPanel = h("div", { class: "popover hidden", testid: "columns-panel" });

  const runsCard = card(
    "Runs",
    [
      h(
        "form",
        {
          class: "toolbar",
          on: {
            submit: (ev) => {
              ev.preventDefault();
              filter = filterInput.value.trim();
              void search(true);
            },
          },
        },
        filterInput,
        h("button", { type: "submit", class: "btn btn-primary", testid: "runs-search" }, "Search"),
        button("Clear", () => {
          filterInput.value = "";
          filter = "";
          void search(true);
        }, { kind: "ghost" }),
        h("div", { class: "spacer" }),
        h("div", { class: "popover-anchor" }, columnsButton, columnsPanel),
      ),
      filterError,
      h("div", { class: "toolbar toolbar-secondary" }, compareButton, selectionInfo),
      tableBox,
      pager,
    ],
    { testid: "runs-card" },
  );

  ctx.root.append(h("div", { class: "split" }, card("Experiments", expList, { class: "side-card" }), runsCard));
  const closeColumns = (ev: MouseEvent) => {
    const target = ev.target as Node | null;
    if (target && !columnsPanel.contains(target) && !columnsButton.contains(target)) columnsPanel.classList.add("hidden");
  };
  document.addEventListener("click", closeColumns);
  ctx.onCleanup(() => document.removeEventListener("click", closeColumns));

  const syncUrl = () => {
    ctx.setQuery({
      e: selectedIds.join(","),
      filter,
      order: order === "attributes.start_time DESC" ? null : order,
      n: pageSize === 50 ? null : String(pageSize),
      cols: columnsChosen ? columnsText(columns ?? []) : null,
    });
  };

  const updateSelection = () => {
    compareButton.disabled = selectedRuns.size < 2;
    compareButton.textContent = selectedRuns.size >= 2 ? `Compare ${selectedRuns.size} runs` : "Compare";
    selectionInfo.textContent =
      selectedRuns.size === 0 ? "Select runs to compare them." : `${selectedRuns.size} selected: ${[...selectedRuns.values()].join(", ")}`;
  };
  updateSelection();

  const renderExperiments = () => {
    const all = h("input", {
      type: "checkbox",
      checked: selectedIds.length === 0,
      on: {
        change: () => {
          selectedIds = [];
          columns = storedColumns();
          columnsChosen = false;
          renderExperiments();
          void search(true);
        },
      },
    });
    const rows = experiments.map((e) => {
      const box = h("input", {
        type: "checkbox",
        checked: selectedIds.includes(e.experiment_id),
        data: { experimentId: e.experiment_id },
        on: {
          change: (ev) => {
            const on = (ev.target as HTMLInputElement).checked;
            selectedIds = on ? [...selectedIds, e.experiment_id] : selectedIds.filter((x) => x !== e.experiment_id);
            columns = storedColumns();
            columnsChosen = false;
            renderExperiments();
            void search(true);
          },
        },
      });
      return h(
        "label",
        { class: "exp-item", testid: "experiment-item", title: `experiment ${e.experiment_id}` },
        box,
        h("span", { class: "exp-name" }, e.name),
        h("span", { class: "muted small" }, `#${e.experiment_id}`),
      );
    });
    replace(expList, h("label", { class: "exp-item exp-all" }, all, h("span", { class: "exp-name" }, "All experiments")), rows);
  };

  const toggleColumnsPanel = () => {
    if (!columnsPanel.classList.contains("hidden")) {
      columnsPanel.classList.add("hidden");
      return;
    }
    const current = columns ?? [];
    const metricKeys = new Set<string>();
    const paramKeys = new Set<string>();
    for (const r of runs) {
      for (const m of r.data.metrics ?? []) metricKeys.add(m.key);
      for (const p of r.data.params ?? []) paramKeys.add(p.key);
    }
    for (const c of current) (c.kind === "m" ? metricKeys : paramKeys).add(c.key);
    const has = (kind: "p" | "m", key: string) => current.some((c) => c.kind === kind && c.key === key);
    const group = (title: string, kind: "p" | "m", keys: Set<string>) =>
      h(
        "div",
        { class: "col-group" },
        h("h3", null, title),
        [...keys].sort().map((key) =>
          h(
            "label",
            { class: "check" },
            h("input", {
              type: "checkbox",
              checked: has(kind, key),
              data: { kind, key },
              on: {
                change: (ev) => {
                  const on = (ev.target as HTMLInputElement).checked;
                  const list = (columns ?? []).filter((c) => !(c.kind === kind && c.key === key));
                  if (on) list.push({ kind, key });
                  columns = list;
                  columnsChosen = true;
                  try {
                    window.localStorage.setItem(columnsKey(), columnsText(list));
                  } catch {
                    // Storage disabled: the address keeps the choice.
                  }
                  syncUrl();
                  renderTable();
                },
              },
            }),
            h("span", { class: "mono" }, key),
          ),
        ),
      );
    replace(
      columnsPanel,
      h("div", { class: "col-groups" }, group("Metrics", "m", metricKeys), group("Params", "p", paramKeys)),
      h("div", { class: "muted small" }, "Keys of the runs on this page. Ordering by a column asks the server."),
    );
    columnsPanel.classList.remove("hidden");
  };

  const sortHeader = (label: string, clauseBase: Column | { attr: string }, testid: string): HTMLTableCellElement => {
    const asc = orderClause(clauseBase, false);
    const desc = orderClause(clauseBase, true);
    const state = order === desc ? "desc" : order === asc ? "asc" : "";
    return h(
      "th",
      {
        class: `sortable ${state}`,
        testid,
        title: `order by ${desc.replace(/ DESC$/, "")}`,
        on: {
          click: () => {
            order = state === "desc" ? asc : desc;
            void search(true);
          },
        },
      },
      label,
      h("span", { class: "sort-mark" }, state === "desc" ? "▼" : state === "asc" ? "▲" : ""),
    );
  };

  const renderTable = () => {
    const cols = columns ?? [];
    if (runs.length === 0) {
      replace(tableBox, note(filter ? "No runs match this filter." : "No runs yet.", "muted", "runs-empty"));
      return;
    }
    const pageIds = runs.map((r) => r.info.run_id);
    const allBox = h("input", {
      type: "checkbox",
      title: "select all runs on this page",
      checked: pageIds.every((id) => selectedRuns.has(id)),
      on: {
        change: (ev) => {
          const on = (ev.target as HTMLInputElement).checked;
          for (const r of runs) {
            if (on) selectedRuns.set(r.info.run_id, runName(r));
            else selectedRuns.delete(r.info.run_id);
          }
          updateSelection();
          renderTable();
        },
      },
    });
    const head = h(
      "tr",
      null,
      h("th", { class: "check-col" }, allBox),
      sortHeader("Run", { attr: "run_name" }, "sort-run_name"),
      sortHeader("Status", { attr: "status" }, "sort-status"),
      sortHeader("Started", { attr: "start_time" }, "sort-start_time"),
      h("th", null, "Duration"),
      sortHeader("User", { attr: "user_id" }, "sort-user_id"),
      cols.map((c) => sortHeader(c.key, c, `sort-${c.kind}-${c.key}`)),
    );
    const body = runs.map((r) => {
      const id = r.info.run_id;
      const box = h("input", {
        type: "checkbox",
        checked: selectedRuns.has(id),
        testid: "run-select",
        on: {
          change: (ev) => {
            if ((ev.target as HTMLInputElement).checked) selectedRuns.set(id, runName(r));
            else selectedRuns.delete(id);
            updateSelection();
          },
        },
      });
      const duration = r.info.end_time && r.info.start_time ? r.info.end_time - r.info.start_time : null;
      return h(
        "tr",
        { testid: "run-row", data: { runId: id } },
        h("td", { class: "check-col" }, box),
        h("td", null, h("a", { href: href("runs", [id]), class: "strong nowrap" }, runName(r)), h("div", { class: "muted small mono" }, shortId(id))),
        h("td", null, badge(r.info.status, statusTone(r.info.status))),
        h("td", { class: "nowrap" }, fmtTime(r.info.start_time)),
        h("td", { class: "nowrap" }, fmtDuration(duration)),
        h("td", null, r.info.user_id ?? ""),
        cols.map((c) => {
          if (c.kind === "p") return h("td", { class: "mono" }, paramOf(r, c.key) ?? "");
          const v = metricOf(r, c.key);
          return h("td", { class: "num" }, v === undefined ? "" : fmtNum(v));
        }),
      );
    });
    replace(tableBox, h("table", { class: "table", testid: "runs-table" }, h("thead", null, head), h("tbody", null, body)));
  };

  const renderPager = () => {
    const prev = button("← Previous", () => {
      if (pageIndex > 0) {
        pageIndex--;
        void search(false);
      }
    }, { testid: "runs-prev", disabled: pageIndex === 0 });
    const next = button("Next →", () => {
      if (nextToken) {
        tokens[pageIndex + 1] = nextToken;
        pageIndex++;
        void search(false);
      }
    }, { testid: "runs-next", disabled: !nextToken });
    const size = h(
      "select",
      {
        class: "select",
        testid: "runs-page-size",
        on: {
          change: (ev) => {
            pageSize = Number((ev.target as HTMLSelectElement).value);
            void search(true);
          },
        },
      },
      PAGE_SIZES.map((n) => h("option", { value: String(n), attrs: n === pageSize ? { selected: "" } : {} }, `${n} per page`)),
    );
    const first = pageIndex * pageSize + 1;
    replace(
      pager,
      prev,
      h("span", { class: "muted", testid: "runs-range" }, runs.length ? `Runs ${first}–${first + runs.length - 1}${nextToken ? "" : " (last page)"}` : ""),
      next,
      h("div", { class: "spacer" }),
      size,
    );
  };

  let searchSeq = 0;
  const search = async (reset: boolean) => {
    if (reset) {
      tokens = [undefined];
      pageIndex = 0;
    }
    syncUrl();
    const seq = ++searchSeq;
    filterError.textContent = "";
    tableBox.classList.add("loading");
    const ids = selectedIds.length > 0 ? selectedIds : experiments.map((e) => e.experiment_id);
    try {
      if (ids.length === 0) {
        runs = [];
        nextToken = undefined;
      } else {
        const page = await api.searchRuns({
          experiment_ids: ids,
          filter,
          order_by: [order],
          max_results: pageSize,
          ...(tokens[pageIndex] ? { page_token: tokens[pageIndex] } : {}),
        });
        if (seq !== searchSeq || !ctx.alive()) return;
        runs = page.runs ?? [];
        nextToken = page.next_page_token || undefined;
      }
      if (columns === null) columns = defaultColumns(runs);
      renderTable();
      renderPager();
    } catch (e) {
      if (seq !== searchSeq || !ctx.alive()) return;
      if (e instanceof ApiError && e.status === 400) {
        filterError.textContent = e.message;
        runs = [];
        clear(tableBox);
        clear(pager);
      } else {
        replace(tableBox, note(`Search failed: ${errorText(e)}`, "error"));
      }
    } finally {
      tableBox.classList.remove("loading");
    }
  };

  // Experiments (active ones; a few hundred at most are listed).
  const loaded: Experiment[] = [];
  let token: string | undefined;
  do {
    const page = await api.searchExperiments(200, token);
    loaded.push(...(page.experiments ?? []));
    token = page.next_page_token || undefined;
  } while (token && loaded.length < 1000);
  if (!ctx.alive()) return;
  experiments = loaded.sort((a, b) => (b.last_update_time ?? 0) - (a.last_update_time ?? 0));
  renderExperiments();
  await search(true);
}
