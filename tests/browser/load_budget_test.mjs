// Page load budget of keel's web dashboard: a keel server seeded with 10,000
// runs (through the REST API), 30 days of hourly monitoring windows for one
// model and 400 5-minute ones interleaved with the newest of them, measured in
// headless Chromium (playwright-core).
//
//   node tests/browser/load_budget_test.mjs        (from the repository root)
//
// Prints how long seeding took and, per page, the time from navigation until
// its table, grid or charts are drawn (first load and repeats). Times are
// recorded, never asserted. Asserted are correctness properties of the
// requests the pages make: the runs page reads one server-side page of runs;
// the monitoring page reads the hourly windows only (window_ms=, paged back
// with before_id), all 720 of them, and exactly one full report (id=); the
// deployments page reads operational figures only (fields=operational, no
// column summaries, no full report). The figures also go to
// KEEL_TEST_ARTIFACTS/load_budget.json.
//
// Environment: see harness.mjs; SQLITE3 (default /usr/bin/sqlite3) inserts
// the windows; KEEL_LOAD_RUNS, KEEL_LOAD_WINDOWS and KEEL_LOAD_SHORT_WINDOWS
// change the sizes.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import {
  ARTIFACTS,
  CHROMIUM,
  CHURN_CSV,
  check,
  dashboardBase,
  Failure,
  finish,
  Keel,
  loadPlaywright,
  parseCsv,
  predictAndLabel,
  results,
  rowCount,
  shot,
  step,
  stopServersOnSignals,
  waitFor,
} from "./harness.mjs";

const RUNS = Number(process.env.KEEL_LOAD_RUNS || 10000);
const WINDOWS = Number(process.env.KEEL_LOAD_WINDOWS || 720); // 30 days of hourly windows
const SHORT_WINDOWS = Number(process.env.KEEL_LOAD_SHORT_WINDOWS || 400); // 5-minute windows (the newest 33 hours)
const HISTORY_MAX = 720; // the monitoring page's history: 30 days or 720 windows of one length
const CONNECTIONS = 8; // concurrent seeding connections
const PAGE_SIZE = 50; // the runs page's default
const REPEATS = 3; // loads measured per page
const SQLITE3 = process.env.SQLITE3 || "/usr/bin/sqlite3";
const PLANTED = "total_day_minutes"; // x1.8 in the scored rows: drifted in the template window
const HOUR = 3600000;
const FIVE_MIN = 300000;
const DAY = 24 * HOUR;
const WINDOWS_PATH = "/api/2.0/keel/monitor/windows";
const KINDS_PATH = "/api/2.0/keel/monitor/window-kinds";

const execFileP = promisify(execFile);

/** A small deterministic generator (mulberry32). */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The stored report of one window of `span` ms ending `msBack` ms before the
 * template's: traffic with a daily cycle (per hour, scaled to the span), latency following it, labelled
 * performance near validation, and the planted feature drifting only in the
 * last 7 days. Verdicts follow each column's threshold and direction, as the
 * server's would.
 */
function shiftedReport(template, msBack, span, rnd) {
  const hoursBack = msBack / HOUR;
  const r = structuredClone(template);
  r.to_ms = template.to_ms - msBack;
  r.from_ms = r.to_ms - span;
  const hourOfDay = new Date(r.to_ms).getUTCHours();
  const daily = 1 + 0.6 * Math.sin(((hourOfDay - 8) / 24) * 2 * Math.PI);
  const predictions = Math.max(1, Math.round(((template.rows * span) / HOUR) * daily * (0.85 + 0.3 * rnd())));
  r.rows = predictions;
  const op = r.operational;
  op.seconds = span / 1000;
  op.predictions = predictions;
  op.rate_per_s = predictions / op.seconds;
  op.endpoints = { predict: predictions };
  const p50 = (template.operational.latency_us.p50 ?? 5000) * (0.7 + 0.4 * daily * (0.9 + 0.2 * rnd()));
  op.latency_us = { p50, p95: p50 * (2 + rnd()), p99: p50 * (3.2 + 2 * rnd()), max: p50 * (6 + 4 * rnd()) };
  const perf = r.performance;
  perf.labelled = Math.round(predictions * 0.6);
  perf.live = {};
  for (const [k, v] of Object.entries(perf.reference ?? {})) {
    if (typeof v === "number") perf.live[k] = v * (0.97 + 0.04 * rnd());
  }
  const drift = r.drift;
  let drifted = 0;
  let features = 0;
  for (const c of drift.columns) {
    if (typeof c.score !== "number" || typeof c.threshold !== "number") continue;
    if (c.name === PLANTED && hoursBack > 7 * 24) c.score = c.threshold * (0.2 + 0.3 * rnd());
    else c.score = c.score * (0.85 + 0.3 * rnd());
    c.drift = c.direction === "p_value" ? c.score < c.threshold : c.score > c.threshold;
    if (c.role === "feature") {
      features++;
      if (c.drift) drifted++;
    } else if (c.role === "prediction") {
      drift.prediction_drift = c.drift;
    }
  }
  drift.dataset.drifted = drifted;
  drift.dataset.share = features ? drifted / features : 0;
  drift.dataset.drift = drift.dataset.share >= drift.dataset.drift_share;
  return r;
}

const sqlText = (s) => `'${String(s).replace(/'/g, "''")}'`;

/** Median of a list of numbers. */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Records every response of `page` until stop(): path, query, bytes of the
 * body, and the server's time to the end of the response.
 */
function recordResponses(page) {
  const pending = [];
  const onResponse = (resp) => {
    pending.push(
      (async () => {
        const url = new URL(resp.url());
        let bytes = 0;
        try {
          bytes = (await resp.body()).length;
        } catch {
          // no body (e.g. a redirect)
        }
        const t = resp.request().timing();
        // Window lists: which windows came, and whether they carry column summaries or reports.
        let windows = null;
        if (url.pathname === WINDOWS_PATH && bytes > 0) {
          try {
            windows = (JSON.parse((await resp.body()).toString()).windows ?? []).map((w) => ({ id: w.id, span: w.to_ms - w.from_ms, columns: "columns" in w, report: "report" in w }));
          } catch {
            // not JSON: left as null
          }
        }
        return { path: url.pathname, query: url.searchParams, status: resp.status(), bytes, windows, ms: t.responseEnd > 0 ? t.responseEnd - t.requestStart : NaN };
      })(),
    );
  };
  page.on("response", onResponse);
  return {
    async stop() {
      page.off("response", onResponse);
      return Promise.all(pending);
    },
  };
}

/** Per path: requests, KiB of bodies, and the slowest one's time (request sent to response end). */
function describe(responses) {
  const byPath = new Map();
  for (const r of responses) {
    const e = byPath.get(r.path) ?? { n: 0, bytes: 0, ms: 0 };
    e.n++;
    e.bytes += r.bytes;
    e.ms = Math.max(e.ms, r.ms);
    byPath.set(r.path, e);
  }
  return [...byPath.entries()].map(([p, e]) => `${p} x${e.n} ${(e.bytes / 1024).toFixed(0)} KiB${Number.isFinite(e.ms) ? ` (${e.ms.toFixed(0)} ms)` : ""}`).join(", ");
}

async function main() {
  const { chromium } = loadPlaywright();
  mkdirSync(ARTIFACTS, { recursive: true });
  const dir = mkdtempSync(path.join(os.tmpdir(), "keel-load-"));
  const first = new Keel(dir, ["--monitor-interval", "200ms"]);
  let keel = first;
  const cleanups = [];
  const figures = { runs: RUNS, windows: WINDOWS, short_windows: SHORT_WINDOWS, connections: CONNECTIONS, seed_ms: {}, pages: {}, bytes: {}, requests: {} };
  let browser = null;
  const pageErrors = [];
  try {
    let template = null;
    await step("seed: churn@champion, and one real monitoring window of 1,000 predictions", async () => {
      const t0 = performance.now();
      await first.cli("train", "--data", CHURN_CSV, "--target", "churn", "--experiment", "churn", "--register", "churn", "--param", "n_estimators=20");
      await first.cli("models", "alias", "churn@champion", "1");
      await first.start();
      const [header, ...body] = parseCsv(readFileSync(CHURN_CSV, "utf8"));
      await predictAndLabel(first, header, body.slice(0, 1000), (rec) => ({ ...rec, [PLANTED]: Math.round(Number(rec[PLANTED]) * 1.8 * 100) / 100 }));
      const hourly = await waitFor("a stored hourly window", async () => {
        const r = await first.api("GET", "/api/2.0/keel/monitor/windows?model=churn&full=true&limit=10");
        return r.windows?.find((w) => w.to_ms - w.from_ms === HOUR && w.rows > 0);
      }, 30000, 200);
      template = { version: hourly.version, computed_ms: hourly.computed_ms, report: hourly.report };
      await first.stop();
      figures.seed_ms.model = performance.now() - t0;
      check(template.report.drift.columns.length > 10, `template: the server's hourly window (${hourly.rows} rows, ${template.report.drift.columns.length} columns, ${JSON.stringify(template.report).length} bytes of report)`);
    });

    await step(`seed: ${WINDOWS - 1} more hourly windows (${WINDOWS} = ${Math.round(WINDOWS / 24)} days) and ${SHORT_WINDOWS} 5-minute ones in monitor_windows`, async () => {
      const t0 = performance.now();
      const rnd = random(7);
      const lines = ["BEGIN;"];
      const insert = (r, computed) =>
        lines.push(
          `INSERT INTO monitor_windows(model, version, from_time, to_time, computed_time, report) VALUES ('churn', ${sqlText(template.version)}, ${r.from_ms}, ${r.to_ms}, ${computed}, ${sqlText(JSON.stringify(r))});`,
        );
      for (let i = 1; i < WINDOWS; i++) insert(shiftedReport(template.report, i * HOUR, HOUR, rnd), template.computed_ms - i * HOUR);
      // 5-minute windows between the newest hourly ones (computed 1 ms later than a whole
      // multiple of 5 minutes back, so no two windows share a computed time).
      for (let i = 1; i <= SHORT_WINDOWS; i++) insert(shiftedReport(template.report, i * FIVE_MIN, FIVE_MIN, rnd), template.computed_ms - i * FIVE_MIN + 1);
      lines.push("COMMIT;");
      const sqlFile = path.join(dir, "windows.sql");
      writeFileSync(sqlFile, lines.join("\n"));
      try {
        await execFileP(SQLITE3, [first.dbPath, `.read ${sqlFile}`]);
      } catch (e) {
        throw new Failure(`${SQLITE3} failed: ${e.stderr || e.message}`);
      }
      rmSync(sqlFile);
      figures.seed_ms.windows = performance.now() - t0;
      const { stdout } = await execFileP(SQLITE3, [first.dbPath, "SELECT count(*) FROM monitor_windows WHERE model = 'churn' AND to_time - from_time = 3600000"]);
      check(Number(stdout.trim()) === WINDOWS, `${stdout.trim()} hourly windows stored (${figures.seed_ms.windows.toFixed(0)} ms)`);
      const short = await execFileP(SQLITE3, [first.dbPath, `SELECT count(*) FROM monitor_windows WHERE model = 'churn' AND to_time - from_time = ${FIVE_MIN}`]);
      check(Number(short.stdout.trim()) >= SHORT_WINDOWS, `${short.stdout.trim()} 5-minute windows stored`);
    });

    await step(`seed: ${RUNS} runs through the REST API (${CONNECTIONS} connections)`, async () => {
      // Monitoring at its default interval; churn@champion served from the start.
      keel = new Keel(dir, ["--monitor-interval", "5m", "--serve", "churn@champion"]);
      await keel.start();
      const exp = await keel.post("/api/2.0/mlflow/experiments/create", { name: "load" });
      const t0 = performance.now();
      const start = Date.now() - RUNS * 60000;
      let next = 0;
      const worker = async () => {
        for (;;) {
          const i = next++;
          if (i >= RUNS) return;
          const ts = start + i * 60000;
          const created = await keel.post("/api/2.0/mlflow/runs/create", {
            experiment_id: exp.experiment_id,
            run_name: `run-${String(i).padStart(5, "0")}`,
            start_time: ts,
            tags: [{ key: "team", value: `team-${i % 7}` }],
          });
          await keel.post("/api/2.0/mlflow/runs/log-batch", {
            run_id: created.run.info.run_id,
            params: [
              { key: "learning_rate", value: String(((i % 10) + 1) / 100) },
              { key: "max_depth", value: String(3 + (i % 6)) },
              { key: "model", value: i % 3 === 0 ? "lightgbm" : "xgboost" },
            ],
            metrics: [
              { key: "valid_auc", value: 0.7 + ((i * 37) % 250) / 1000, timestamp: ts, step: 0 },
              { key: "valid_log_loss", value: 0.2 + ((i * 13) % 200) / 1000, timestamp: ts, step: 0 },
              { key: "train_loss", value: 0.1 + ((i * 7) % 100) / 1000, timestamp: ts, step: 0 },
            ],
          });
        }
      };
      await Promise.all(Array.from({ length: CONNECTIONS }, worker));
      figures.seed_ms.runs = performance.now() - t0;
      const last = await keel.api("POST", "/api/2.0/mlflow/runs/search", { experiment_ids: [exp.experiment_id], max_results: 1, order_by: ["attributes.start_time DESC"] });
      check(last.runs?.[0]?.info.run_name === `run-${String(RUNS - 1).padStart(5, "0")}`, `${RUNS} runs seeded in ${(figures.seed_ms.runs / 1000).toFixed(1)} s (${((RUNS * 2) / (figures.seed_ms.runs / 1000)).toFixed(0)} requests/s)`);
    });

    const base = await dashboardBase(keel.url, cleanups);
    // The machine's load when measuring (other work on the cores moves the figures).
    figures.loadavg_1m = Number(os.loadavg()[0].toFixed(2));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(30000);
    page.on("pageerror", (e) => pageErrors.push(e.message));

    /**
     * Loads `hash` from a blank page: ms until `ready` resolved, and the
     * responses until `settled` resolved too (requests made after drawing).
     */
    const load = async (hash, ready, settled = async () => undefined) => {
      await page.goto("about:blank");
      const rec = recordResponses(page);
      const t0 = performance.now();
      await page.goto(`${base}/${hash}`);
      await ready();
      const ms = performance.now() - t0;
      await settled();
      return { ms, responses: await rec.stop() };
    };
    const record = (name, list) => {
      figures.pages[name] = { ms: list.map((x) => Math.round(x)), median_ms: Math.round(median(list)) };
    };

    await step(`runs page: ${RUNS} runs, first page and next pages`, async () => {
      const firstLoads = [];
      let responses = [];
      for (let i = 0; i < REPEATS; i++) {
        const r = await load("#/experiments", () => page.waitForSelector("[data-testid=runs-table]", { state: "visible" }));
        firstLoads.push(r.ms);
        responses = r.responses;
      }
      record("runs: first page", firstLoads);
      check((await rowCount(page, "[data-testid=run-row]")) === PAGE_SIZE, `${PAGE_SIZE} rows on the first page`);
      const searches = responses.filter((r) => r.path.endsWith("/runs/search"));
      check(searches.length === 1, `one runs/search request (${describe(responses)})`);
      figures.bytes["runs: first page"] = responses.reduce((a, r) => a + r.bytes, 0);
      figures.requests["runs: first page"] = describe(responses);
      const nextLoads = [];
      for (let i = 1; i <= REPEATS; i++) {
        const t0 = performance.now();
        await page.click("[data-testid=runs-next]");
        await page.waitForSelector(`[data-testid=runs-range]:text-matches("^Runs ${i * PAGE_SIZE + 1}–")`);
        nextLoads.push(performance.now() - t0);
      }
      record("runs: next page", nextLoads);
      check((await rowCount(page, "[data-testid=run-row]")) === PAGE_SIZE, `page ${REPEATS + 1}: ${PAGE_SIZE} rows`);
      await shot(page, "load-runs");
      const filtered = [];
      for (let i = 0; i < REPEATS; i++) {
        const r = await load(`#/experiments?filter=${encodeURIComponent("metrics.valid_auc > 0.9")}&order=${encodeURIComponent("metrics.valid_auc DESC")}`, () =>
          page.waitForSelector("[data-testid=runs-table]", { state: "visible" }),
        );
        filtered.push(r.ms);
      }
      record("runs: filtered, ordered by a metric", filtered);
      const top = await page.locator("[data-testid=run-row]").first().getAttribute("data-run-id");
      check(!!top, "filter metrics.valid_auc > 0.9 ordered by valid_auc DESC lists runs");
    });

    await step(`monitoring page: ${WINDOWS} hourly windows`, async () => {
      const loads = [];
      let responses = [];
      for (let i = 0; i < REPEATS; i++) {
        const r = await load(
          "#/monitoring/churn",
          async () => {
            await page.waitForSelector("[data-testid=drift-grid]", { state: "visible" });
            await page.waitForSelector("[data-testid=feature-chart] canvas");
            await page.waitForSelector("[data-testid=prediction-chart] canvas");
            await page.waitForSelector("[data-testid=performance-chart] canvas");
          },
          // The newest report's details (a histogram) may land after the charts: its request counts too.
          () => page.waitForSelector(".histogram"),
        );
        loads.push(r.ms);
        responses = r.responses;
      }
      record("monitoring: grid and charts", loads);
      // The hourly windows the page should show: those within 30 days of the newest, at most 720.
      const { stdout } = await execFileP(SQLITE3, [
        keel.dbPath,
        `SELECT count(*) FROM monitor_windows WHERE model = 'churn' AND version = ${sqlText(template.version)} AND to_time - from_time = ${HOUR} AND computed_time >= (SELECT max(computed_time) FROM monitor_windows WHERE model = 'churn' AND version = ${sqlText(template.version)} AND to_time - from_time = ${HOUR}) - ${30 * DAY}`,
      ]);
      const expected = Math.min(HISTORY_MAX, Number(stdout.trim()));
      const points = Number(await page.getAttribute("[data-testid=feature-chart]", "data-points"));
      check(expected >= Math.min(HISTORY_MAX, WINDOWS) && points === expected, `the drift chart holds ${points} hourly windows (expected ${expected}: 30 days or ${HISTORY_MAX} windows)`);
      check(Number(await page.getAttribute("[data-testid=performance-chart]", "data-points")) === expected, "the performance chart too");
      const spanValue = await page.inputValue("[data-testid=monitor-span]");
      check(spanValue === String(HOUR), "hourly windows chosen by default");
      // Without the length filter the newest 1,000 windows would not hold 30 days of hourly ones.
      const mixed = await keel.api("GET", `${WINDOWS_PATH}?model=churn&limit=1000&fields=rows`);
      const hourlyOfMixed = mixed.windows.filter((w) => w.to_ms - w.from_ms === HOUR).length;
      check(hourlyOfMixed < expected, `the newest 1,000 windows of every length hold only ${hourlyOfMixed} hourly ones`);
      await shot(page, "load-monitoring");
      // What the page read: which versions and lengths exist (window-kinds), the hourly history paged back with before_id, one full report.
      const lists = responses.filter((r) => r.path === WINDOWS_PATH);
      const full = lists.filter((r) => r.query.get("full") === "true");
      const discovery = lists.filter((r) => r.query.get("full") !== "true" && !r.query.has("window_ms"));
      const history = lists.filter((r) => r.query.get("full") !== "true" && r.query.has("window_ms"));
      const kinds = responses.filter((r) => r.path === KINDS_PATH);
      check(
        kinds.length === 1 && kinds[0].query.get("model") === "churn" && discovery.length === 0,
        `one window-kinds request finds the versions and lengths, no list of the newest windows (${discovery.map((r) => r.query.toString()).join(" | ")})`,
      );
      check(
        history.length >= 1 && history.every((r) => r.query.get("window_ms") === String(HOUR) && r.query.get("version") === template.version && r.windows.every((w) => w.span === HOUR)),
        `history: ${history.length} request(s) for hourly windows of version ${template.version} only`,
      );
      const chained = history.every((r, i) => (i === 0 ? !r.query.has("before_id") : r.query.get("before_id") === String(history[i - 1].windows.at(-1)?.id)));
      const historyWindows = history.reduce((a, r) => a + r.windows.length, 0);
      check(chained && historyWindows === expected, `history paged back with before_id: ${history.map((r) => r.windows.length).join(" + ")} = ${historyWindows} windows`);
      const newestHourly = history[0]?.windows[0]?.id;
      check(
        full.length === 1 && full[0].query.get("id") === String(newestHourly) && full[0].windows.length === 1 && full[0].windows[0].report,
        `exactly one full report, of the newest hourly window (id ${full[0]?.query.get("id")}; ${((full[0]?.bytes ?? 0) / 1024).toFixed(0)} KiB)`,
      );
      const allowed = new Set(["/", "/ui/app.js", "/ui/app.css", "/version", "/api/2.0/keel/whoami", WINDOWS_PATH, KINDS_PATH, "/api/2.0/keel/alerts"]);
      const other = responses.filter((r) => !allowed.has(r.path));
      check(other.length === 0, `only windows, alerts and the app requested (${describe(responses)})`);
      const bytes = responses.reduce((a, r) => a + r.bytes, 0);
      const fullBytes = JSON.stringify(template.report).length;
      figures.bytes["monitoring"] = bytes;
      figures.bytes["monitoring: windows"] = lists.reduce((a, r) => a + r.bytes, 0);
      figures.requests["monitoring"] = describe(responses);
      figures.requests["monitoring: windows"] = lists.map((r) => `${r.query.toString()}: ${r.windows.length} windows, ${(r.bytes / 1024).toFixed(0)} KiB, ${r.ms.toFixed(0)} ms`);
      check(bytes < (WINDOWS * fullBytes) / 2, `${(bytes / 1024 / 1024).toFixed(2)} MiB read, under half of ${WINDOWS} full reports (${((WINDOWS * fullBytes) / 1024 / 1024).toFixed(1)} MiB)`);
    });

    await step(`deployments page: traffic over ${WINDOWS} hourly windows`, async () => {
      const loads = [];
      let responses = [];
      for (let i = 0; i < REPEATS; i++) {
        const r = await load("#/deployments", async () => {
          await page.waitForSelector("[data-testid=rate-chart] canvas");
          await page.waitForSelector("[data-testid=latency-chart] canvas");
        });
        loads.push(r.ms);
        responses = r.responses;
      }
      record("deployments: traffic charts", loads);
      const points = Number(await page.getAttribute("[data-testid=rate-chart]", "data-points"));
      check(points >= WINDOWS, `the request-rate chart holds ${points} hourly windows`);
      const lists = responses.filter((r) => r.path === WINDOWS_PATH);
      check(lists.length >= 1 && lists.every((r) => r.query.get("full") !== "true" && r.windows.every((w) => !w.columns && !w.report)), `no full report and no column summary read (${describe(responses)})`);
      const history = lists.filter((r) => r.query.has("window_ms"));
      check(
        history.length >= 1 && history.every((r) => r.query.get("window_ms") === String(HOUR) && r.query.get("fields") === "operational" && r.windows.every((w) => w.span === HOUR)),
        `traffic: ${history.map((r) => r.windows.length).join(" + ")} hourly windows, operational figures only`,
      );
      check(lists.every((r) => r.query.has("window_ms")) && responses.filter((r) => r.path === KINDS_PATH).length === 1, "the lengths from one window-kinds request");
      figures.bytes["deployments"] = responses.reduce((a, r) => a + r.bytes, 0);
      figures.bytes["deployments: windows"] = lists.reduce((a, r) => a + r.bytes, 0);
      figures.requests["deployments"] = describe(responses);
      figures.requests["deployments: windows"] = lists.map((r) => `${r.query.toString()}: ${r.windows.length} windows, ${(r.bytes / 1024).toFixed(0)} KiB, ${r.ms.toFixed(0)} ms`);
      await shot(page, "load-deployments");
    });
  } catch (e) {
    if (!(e instanceof Failure)) results.failures.push(e && e.stack ? e.stack : String(e));
  } finally {
    if (browser) await browser.close().catch(() => undefined);
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => undefined);
    await keel.stop().catch(() => undefined);
    await first.stop().catch(() => undefined);
    if (results.failures.length === 0) rmSync(dir, { recursive: true, force: true });
    else console.log(`(kept ${dir} for inspection)`);
  }

  if (pageErrors.length > 0) results.failures.push(`uncaught errors in the page: ${pageErrors.join(" | ")}`);
  console.log(`\nseeding: model and template window ${(figures.seed_ms.model / 1000).toFixed(1)} s, ${WINDOWS - 1 + SHORT_WINDOWS} windows ${(figures.seed_ms.windows / 1000).toFixed(1)} s, ${RUNS} runs ${(figures.seed_ms.runs / 1000).toFixed(1)} s`);
  console.log(`page loads (from a blank page until drawn; ${REPEATS} loads each, median first; load average ${figures.loadavg_1m}):`);
  for (const [name, f] of Object.entries(figures.pages)) console.log(`  ${name.padEnd(38)} ${String(f.median_ms).padStart(6)} ms   (${f.ms.join(", ")})`);
  for (const [name, b] of Object.entries(figures.bytes)) console.log(`  bytes read, ${name.padEnd(26)} ${(b / 1024).toFixed(0).padStart(6)} KiB`);
  for (const name of ["monitoring: windows", "deployments: windows"]) for (const line of figures.requests[name] ?? []) console.log(`  ${name} ${line}`);
  for (const k of Object.keys(figures.seed_ms)) figures.seed_ms[k] = Math.round(figures.seed_ms[k]);
  writeFileSync(path.join(ARTIFACTS, "load_budget.json"), JSON.stringify(figures, null, 2) + "\n");
  console.log(`figures in ${path.join(ARTIFACTS, "load_budget.json")}`);
  return finish();
}

stopServersOnSignals();
let exitCode = 1;
try {
  exitCode = await main();
} catch (e) {
  console.log(`FAIL ${e && e.stack ? e.stack : e}`);
  console.log(`${results.passed} passed, 1 failed`);
}
process.exit(exitCode);
