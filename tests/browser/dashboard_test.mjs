// Browser test of keel's web dashboard: a real keel server on seeded data,
// driven by headless Chromium through playwright-core.
//
//   node tests/browser/dashboard_test.mjs          (from the repository root)
//
// Environment: see harness.mjs (KEEL_BINARY, KEEL_SHARED_DIR,
// KEEL_TEST_ARTIFACTS, CHROMIUM, KEEL_WEB_DIR).
// Exits 0 when every check passed, 1 otherwise; the server is always stopped.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
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

const PLANTED = "total_day_minutes"; // multiplied by 1.8 in every scored row
const STEADY = "total_eve_minutes"; // sent as is
const SCORED_ROWS = 1000;
const SCHEDULE = "0 3 * * 1"; // the server's retraining policy: Mondays 03:00 UTC
const timings = [];

/** The first Monday 03:00 UTC after `now` (what SCHEDULE's next slot must be). */
function nextMonday3(now) {
  const d = new Date(now);
  let t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), 3, 0, 0);
  while (new Date(t).getUTCDay() !== 1 || t <= now) t += 86400000;
  return t;
}

/** 2024-05-01 03:00:00 (UTC), as the page shows a time in a UTC browser. */
function utcText(ms) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

async function timed(page, name, url, readySelector) {
  const t0 = performance.now();
  await page.goto(url);
  await page.waitForSelector(readySelector, { state: "visible", timeout: 15000 });
  const ms = performance.now() - t0;
  timings.push([name, ms]);
  return ms;
}

// ------------------------------------------------------------------ main

async function main() {
  const { chromium } = loadPlaywright();
  mkdirSync(ARTIFACTS, { recursive: true });
  const dir = mkdtempSync(path.join(os.tmpdir(), "keel-browser-"));
  // The server runs a retraining policy whose schedule, alert rule and
  // continuous cadence do not fire during the test (the page shows them).
  const serverPolicy = path.join(dir, "server-policies.yaml");
  writeFileSync(
    serverPolicy,
    `model: churn\ntrain: { data: ${CHURN_CSV}, target: churn, params: { n_estimators: 10 } }\n` +
      `schedule: "${SCHEDULE}"\ntimezone: UTC\nmissed: skip\non_alerts: [auc_decay]\ncontinuous: { every: 6h, min_rows: 700 }\n` +
      `gate: { metric: auc, min_delta: 0.01, max_regression: 0.02, min_rows: 200 }\nshadow: { duration: 1h, min_requests: 500 }\n`,
  );
  const keel = new Keel(dir, ["--monitor-interval", "200ms", "--retrain-policies", serverPolicy, "--counts-flush-ms", "200"]);
  const cleanups = [];
  let browser = null;
  const pageErrors = [];
  try {
    let runs = {};
    await step("seed: two training runs, two versions, churn@champion = 1", async () => {
      await keel.cli("train", "--data", CHURN_CSV, "--target", "churn", "--experiment", "churn", "--register", "churn", "--run-name", "trees-20", "--param", "n_estimators=20");
      await keel.cli("train", "--data", CHURN_CSV, "--target", "churn", "--experiment", "churn", "--register", "churn", "--run-name", "trees-40", "--param", "n_estimators=40", "--param", "max_depth=4");
      await keel.cli("models", "alias", "churn@champion", "1", "--reason", "first champion");
      check(true, "keel train x2 and keel models alias");
    });

    await step("server: start, log a metric history, score and label shifted rows", async () => {
      await keel.start();
      check(true, `keel server at ${keel.url}`);
      const found = await keel.api("POST", "/api/2.0/mlflow/runs/search", { experiment_ids: ["1"], max_results: 10, order_by: ["attributes.start_time ASC"] });
      check(found.runs?.length === 2, "2 runs in experiment churn");
      runs = { first: found.runs[0].info.run_id, second: found.runs[1].info.run_id };
      // A curve of several steps, as a training loop logs it (MLflow log-batch).
      for (const [id, rate] of [[runs.first, 0.05], [runs.second, 0.08]]) {
        const metrics = Array.from({ length: 30 }, (_, s) => ({ key: "train_loss", value: 0.69 * Math.exp(-rate * s) + 0.05, timestamp: Date.now(), step: s }));
        await keel.api("POST", "/api/2.0/mlflow/runs/log-batch", { run_id: id, metrics });
      }
      const [header, ...body] = parseCsv(readFileSync(CHURN_CSV, "utf8"));
      const out = await predictAndLabel(keel, header, body.slice(0, SCORED_ROWS), (rec) => ({ ...rec, [PLANTED]: Math.round(Number(rec[PLANTED]) * 1.8 * 100) / 100 }));
      check(out.predictions?.length === SCORED_ROWS, `${SCORED_ROWS} predictions with ${PLANTED} x1.8, labelled`);
      const windows = await waitFor("a monitoring window of the scored rows", async () => {
        const r = await keel.api("GET", "/api/2.0/keel/monitor/windows?model=churn");
        return r.windows?.length > 0 && r.windows[0].rows >= SCORED_ROWS ? r.windows : null;
      }, 30000, 200);
      const planted = windows[0].columns.find((c) => c.name === PLANTED);
      check(planted?.drift === true, `the server's newest window marks ${PLANTED} drifted`);
    });

    await step("seed: a retraining job (rejected by its gate)", async () => {
      const policy = path.join(dir, "retrain.yaml");
      writeFileSync(
        policy,
        `model: churn\ntrain: { data: ${CHURN_CSV}, target: churn, params: { n_estimators: 10 } }\nwindow: { include_labeled_predictions: false }\ngate: { metric: auc, min_delta: 1.0, min_rows: 100 }\n`,
      );
      const out = await keel.cli("retrain", "churn", "--policy", policy, "--json");
      const job = JSON.parse(out);
      check(job.status === "rejected", `keel retrain ran job ${job.id}: ${job.status}`);
      runs.retrain = job.run_id;
      runs.job = job;
      check((await keel.championVersion()) === "1", "champion still version 1");
    });

    let base = keel.url;
    await step("the dashboard is served at /", async () => {
      base = await dashboardBase(keel.url, cleanups);
      const index = await (await fetch(`${base}/`)).text();
      check(index.includes("/ui/app.js") && index.includes("/ui/app.css"), "index.html refers to /ui/app.js and /ui/app.css");
      const js = await fetch(`${base}/ui/app.js`);
      check(js.status === 200 && (await js.text()).length > 1000, "GET /ui/app.js");
      check((await fetch(`${base}/ui/app.css`)).status === 200, "GET /ui/app.css");
    });

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    // UTC: the retraining page's times are checked as text.
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true, timezoneId: "UTC" });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    page.on("pageerror", (e) => pageErrors.push(e.message));

    await step("experiments: list, filter, order, select and compare", async () => {
      await timed(page, "experiments", `${base}/#/experiments`, "[data-testid=runs-table]");
      await shot(page, "experiments");
      check((await rowCount(page, "[data-testid=run-row]")) === 3, "3 runs listed (two trained, one of the retraining job)");
      await page.fill("[data-testid=runs-filter]", "params.`keel.param.n_estimators` = '20'");
      await page.click("[data-testid=runs-search]");
      await waitFor("1 row after filtering", async () => (await rowCount(page, "[data-testid=run-row]")) === 1);
      check((await page.getAttribute("[data-testid=run-row]", "data-run-id")) === runs.first, "filter params.`keel.param.n_estimators` = '20' leaves run trees-20");
      await page.fill("[data-testid=runs-filter]", "metrics.nosuch >");
      await page.click("[data-testid=runs-search]");
      await page.waitForSelector("[data-testid=runs-filter-error]:not(:empty)");
      check(true, "a malformed filter shows the server's message");
      await page.fill("[data-testid=runs-filter]", "");
      await page.click("[data-testid=runs-search]");
      await waitFor("3 rows again", async () => (await rowCount(page, "[data-testid=run-row]")) === 3);
      // Default order: newest first; one click on Started orders ascending on the server.
      check((await page.locator("[data-testid=run-row]").first().getAttribute("data-run-id")) === runs.retrain, "newest run first");
      await page.click("[data-testid=sort-start_time]");
      await waitFor("ascending order", async () => (await page.locator("[data-testid=run-row]").first().getAttribute("data-run-id")) === runs.first);
      check(page.url().includes("order=attributes.start_time+ASC"), "order_by attributes.start_time ASC (in the address)");
      for (const id of [runs.first, runs.second]) {
        await page.locator(`[data-testid=run-row][data-run-id='${id}'] [data-testid=run-select]`).check();
      }
      await page.click("[data-testid=compare-button]");
      await page.waitForSelector("[data-testid=compare-params]");
      await shot(page, "compare");
      const differs = await page.getAttribute("[data-testid=compare-param-row][data-key=num_boost_round]", "data-differs");
      const cls = await page.getAttribute("[data-testid=compare-param-row][data-key=num_boost_round]", "class");
      check(differs === "true" && /\bdiff\b/.test(cls ?? ""), "compare: num_boost_round (20 vs 40) highlighted");
      check((await page.getAttribute("[data-testid=compare-param-row][data-key=seed]", "data-differs")) === "false", "compare: seed (equal) not highlighted");
      await page.waitForSelector("[data-testid=compare-chart] canvas");
      check(true, "compare: metric curves drawn");
    });

    await step("run: metric curve and artifacts", async () => {
      await timed(page, "run", `${base}/#/runs/${runs.first}`, "[data-testid=run-metrics]");
      const canvas = page.locator("[data-testid=metric-chart] canvas");
      await canvas.waitFor();
      const size = await canvas.evaluate((c) => ({ w: c.width, h: c.height }));
      check(size.w > 100 && size.h > 50, `metric curve canvas ${size.w}x${size.h}`);
      await page.click("[data-testid=artifact-dir][data-path=model]");
      const mlmodel = page.locator("[data-testid=artifact-file][data-path='model/MLmodel']");
      await mlmodel.waitFor();
      const link = await mlmodel.locator("[data-testid=artifact-download]").getAttribute("href");
      check(link?.startsWith("/api/2.0/mlflow-artifacts/artifacts/1/") && link.endsWith("/model/MLmodel"), `download link ${link}`);
      const resp = await fetch(base + link);
      check(resp.status === 200 && (await resp.text()).includes("flavors"), "the link downloads MLmodel");
      const download = page.waitForEvent("download");
      await mlmodel.locator("[data-testid=artifact-download]").click();
      const saved = (await download).suggestedFilename();
      check(saved === "MLmodel", `Download saves ${saved}`);
      await shot(page, "run");
    });

    await step("models: promote version 2, then roll back", async () => {
      await timed(page, "models", `${base}/#/models`, "[data-testid=models-table]");
      await shot(page, "models");
      check((await rowCount(page, "[data-testid=model-row][data-model=churn]")) === 1, "model churn listed");
      await timed(page, "model", `${base}/#/models/churn`, "[data-testid=versions-table]");
      check((await rowCount(page, "[data-testid=version-row]")) === 3, "3 versions (two trained, one from retraining)");
      const run1 = (await keel.api("GET", `/api/2.0/mlflow/runs/get?run_id=${runs.first}`)).run;
      const ds = run1.inputs.dataset_inputs[0].dataset;
      const shown = page.locator("[data-testid=version-row][data-version='1'] [data-testid=version-dataset]").first();
      check((await shown.getAttribute("data-digest")) === ds.digest && (await shown.textContent()).includes(ds.name), `version 1's data: ${ds.name} ${ds.digest} (its run's dataset input)`);
      const auc = run1.data.metrics.find((m) => m.key === "valid_auc").value;
      const v1Text = await page.textContent("[data-testid=version-row][data-version='1']");
      check(v1Text.includes(String(Number(auc.toPrecision(4)))), `version 1's valid_auc ${auc.toPrecision(4)} shown`);
      const gate = page.locator(`[data-testid=gate-row][data-job='${runs.job.id}']`);
      await gate.waitFor();
      check((await gate.getAttribute("data-status")) === "rejected" && (await gate.getAttribute("data-decision")) === "failed", `job ${runs.job.id}'s gate decision: failed, job rejected`);
      const champ = Number(await gate.locator("[data-testid=gate-champion]").textContent());
      const chall = Number(await gate.locator("[data-testid=gate-challenger]").textContent());
      check(Math.abs(champ - runs.job.gate.champion) < 1e-3 && Math.abs(chall - runs.job.gate.challenger) < 1e-3, `champion ${champ} vs challenger ${chall} (${runs.job.gate.metric}) as the job recorded`);
      check((await gate.textContent()).includes(runs.job.gate.reason.slice(0, 40)), "the gate's reason shown");
      await page.click("[data-testid=promote-2]");
      await page.waitForSelector("[data-testid=confirm-dialog]");
      const text = await page.textContent("[data-testid=confirm-message]");
      check(text?.includes("alias champion of churn: version 1 -> version 2"), `confirmation says: ${text?.trim()}`);
      await page.fill("[data-testid=confirm-reason]", "browser test promotion");
      await page.click("[data-testid=confirm-ok]");
      await page.waitForSelector("[data-testid=flash-ok]");
      check((await keel.championVersion()) === "2", "API: churn@champion is version 2");
      await page.waitForSelector("[data-testid=alias-row][data-alias=champion][data-version='2']");
      await shot(page, "model");
      await page.click("[data-testid=rollback-champion]");
      await page.waitForSelector("[data-testid=confirm-dialog]");
      const back = await page.textContent("[data-testid=confirm-message]");
      check(back?.includes("alias champion of churn: version 2 -> version 1"), `confirmation says: ${back?.trim()}`);
      await page.click("[data-testid=confirm-ok]");
      await page.waitForSelector("[data-testid=alias-row][data-alias=champion][data-version='1']");
      check((await keel.championVersion()) === "1", "API: churn@champion is version 1 again");
      const history = await keel.api("GET", "/api/2.0/keel/registered-models/alias-history?name=churn&alias=champion");
      check(history.changes.some((c) => c.reason === "browser test promotion" && c.to_version === "2"), "the promotion's reason is in the alias history");
      check((await rowCount(page, "[data-testid=history-row]")) >= 3, "alias history listed");
    });

    await step("monitoring: feature grid and charts", async () => {
      await timed(page, "monitoring", `${base}/#/monitoring/churn`, "[data-testid=drift-grid]");
      const cell = (name) => page.locator(`[data-testid=drift-cell][data-feature=${name}]`);
      check((await cell(PLANTED).getAttribute("data-drift")) === "true", `${PLANTED} (x1.8) marked drifted`);
      check((await cell(STEADY).getAttribute("data-drift")) === "false", `${STEADY} (unchanged) not drifted`);
      await page.waitForSelector("[data-testid=feature-chart] canvas");
      await page.waitForSelector("[data-testid=performance-chart] canvas");
      await page.waitForSelector("[data-testid=prediction-chart] canvas");
      check(true, "drift, prediction drift and performance charts drawn");
      await page.waitForSelector("[data-testid=alerts-table], [data-testid=alerts-empty]");
      await page.waitForSelector(".histogram");
      check(true, "alerts and the planted feature's histogram shown");
      await shot(page, "monitoring");
    });

    await step("deployments: traffic over time, errors, prediction-log health", async () => {
      // One refused request on a serving endpoint (a field the model lacks): a 4xx.
      const bad = await fetch(`${keel.url}/predict/churn@champion`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify([{ nosuch: 1 }]) });
      check(bad.status >= 400 && bad.status < 500, `a malformed /predict answered ${bad.status}`);
      // The store's per-minute counts have it once flushed (every 200 ms here).
      const counted = await waitFor("the refused request in the stored request counts", async () => {
        const r = await keel.api("GET", "/api/2.0/keel/serving/requests?model=churn");
        const errors = (r.points ?? []).reduce((n, p) => n + p.client_errors, 0);
        return errors >= 1 ? r : null;
      });
      const storedRequests = counted.points.reduce((n, p) => n + p.requests, 0);
      await timed(page, "deployments", `${base}/#/deployments?every=1`, "[data-testid=requests-table]");
      check((await rowCount(page, "[data-testid=serving-row][data-ref='churn@champion']")) === 1, "churn@champion served");
      check((await rowCount(page, "[data-testid=requests-row][data-model=churn]")) >= 1, "request counts of model churn from /metrics");
      const value = async (metric) => Number(await page.getAttribute(`[data-testid=health-item][data-metric=${metric}]`, "data-value"));
      check((await value("keel_prediction_log_written_total")) >= SCORED_ROWS, `prediction log: ${await value("keel_prediction_log_written_total")} written`);
      check((await value("keel_prediction_log_dropped_total")) === 0 && (await value("keel_prediction_log_failed_total")) === 0, "prediction log: none dropped or failed");
      check((await value("keel_prediction_log_queue_depth")) >= 0 && (await value("keel_prediction_log_sampled_out_total")) === 0, "prediction log: queue depth and sampled-out shown");
      check((await value("keel_monitor_passes_total")) >= 1 && (await value("keel_monitor_pass_errors_total")) === 0, `monitoring: ${await value("keel_monitor_passes_total")} passes, no errors`);
      check((await value("keel_monitor_leader")) === 1, "monitoring: this (only) replica is the leader");
      const lastPass = await value("keel_monitor_last_pass_timestamp_seconds");
      check(Math.abs(lastPass * 1000 - Date.now()) < 60000, "monitoring: the last pass ended within the last minute");
      const share = Number(await page.getAttribute("[data-testid=error-share]", "data-share"));
      check(share > 0 && share < 0.5, `4xx/5xx share of serving requests since start: ${(share * 100).toFixed(1)}%`);
      await page.waitForSelector("[data-testid=rate-chart] canvas");
      await page.waitForSelector("[data-testid=latency-chart] canvas");
      check(Number(await page.getAttribute("[data-testid=rate-chart]", "data-points")) >= 1, "request rate over time drawn from the stored windows");
      check((await page.textContent("[data-testid=latency-chart]")).includes("p99"), "latency p50/p95/p99 over time drawn");
      await page.waitForSelector("[data-testid=live-rate-chart] canvas", { timeout: 8000 });
      await page.waitForSelector("[data-testid=live-error-chart] canvas");
      check(true, "live request rate and error share sampled from /metrics (every 1 s) and drawn");
      await page.waitForSelector("[data-testid=error-history-chart] canvas");
      const hist = async (a) => Number(await page.getAttribute("[data-testid=error-history-summary]", `data-${a}`));
      check((await hist("errors")) >= 1 && (await hist("requests")) >= storedRequests && (await hist("points")) >= 1,
        `error rate over time from the store: ${await hist("errors")} errors of ${await hist("requests")} requests in ${await hist("points")} step(s)`);
      await shot(page, "deployments");
    });

    await step("retraining: the server's policy and the jobs", async () => {
      const policies = await keel.api("GET", "/api/2.0/keel/retrain/policies");
      const api = policies.policies[0];
      await timed(page, "retraining", `${base}/#/retraining`, "[data-testid=retrain-table]");
      const row = page.locator("[data-testid=policy-row][data-model=churn]");
      await row.waitFor();
      check((await row.locator("[data-testid=policy-schedule]").textContent()).includes(`${SCHEDULE} UTC`), `schedule ${SCHEDULE} UTC shown`);
      const expected = nextMonday3(Date.now());
      const nextMs = Number(await row.locator("[data-testid=policy-next]").getAttribute("data-next-ms"));
      check(api.next_slot_ms === expected && nextMs === expected, `next run ${utcText(expected)} UTC (server and page)`);
      check((await row.locator("[data-testid=policy-next]").textContent()).includes(utcText(expected)), "the next run's time is on the page");
      check((await row.locator("[data-testid=policy-alerts]").textContent()).includes("auc_decay"), "alert trigger auc_decay");
      check((await row.locator("[data-testid=policy-continuous]").textContent()).includes("every 6h"), "continuous every 6h");
      check((await row.locator("[data-testid=policy-phases]").textContent()).includes("shadow 1h"), "shadow 1h, no watch");
      check((await row.getAttribute("data-state")) === "idle", "state idle");
      check((await page.getAttribute("[data-testid=scheduler-role]", "data-leader")) === String(policies.leader), `scheduler role shown (leader: ${policies.leader})`);
      check((await rowCount(page, "[data-testid=retrain-row][data-status=rejected]")) === 1, "the rejected job listed");
      await page.click("[data-testid=retrain-row]");
      await page.waitForSelector(".job-details");
      const log = await page.textContent("[data-testid=job-log]");
      check(/started: manual/.test(log) && /rejected: /.test(log), "the job's log: started, then its gate's verdict");
      await shot(page, "retraining");
    });

    await step("auth: token prompt, and a read-only token hides promote", async () => {
      const tokens = path.join(dir, "tokens.txt");
      writeFileSync(tokens, "alice write alice-secret-1\nbob read bob-secret-2\n");
      const authed = new Keel(dir, ["--auth-tokens", tokens, "--monitor-interval", "off"]);
      await keel.stop(); // one server per store
      await authed.start();
      cleanups.push(() => authed.stop());
      const authBase = await dashboardBase(authed.url, cleanups);
      const ctx2 = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      const p2 = await ctx2.newPage();
      p2.setDefaultTimeout(15000);
      p2.on("pageerror", (e) => pageErrors.push(e.message));
      await p2.goto(`${authBase}/#/models/churn`);
      await p2.waitForSelector("[data-testid=token-dialog]");
      await shot(p2, "token-prompt");
      await p2.fill("[data-testid=token-input]", "bob-secret-2");
      await p2.click("[data-testid=token-save]");
      await p2.waitForSelector("[data-testid=versions-table]");
      check((await p2.textContent("[data-testid=user-name]")) === "bob", "signed in as bob (read)");
      check((await rowCount(p2, "[data-testid^=promote-]")) === 0, "no promote buttons for a read-only token");
      check((await rowCount(p2, "[data-testid=rollback-champion]")) === 0, "no rollback button for a read-only token");
      check((await p2.evaluate(() => localStorage.getItem("keel.token"))) === "bob-secret-2", "token kept in localStorage");
      await p2.goto(`${authBase}/#/retraining`);
      await p2.waitForSelector("[data-testid=policies-none]");
      check((await p2.textContent("[data-testid=policies-none]")).includes("runs no retraining policies"), "a server without --retrain-policies: the page says it runs none");
      await ctx2.close();
    });
  } catch (e) {
    if (!(e instanceof Failure)) results.failures.push(e && e.stack ? e.stack : String(e));
  } finally {
    if (browser) await browser.close().catch(() => undefined);
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => undefined);
    await keel.stop().catch(() => undefined);
    if (results.failures.length === 0) rmSync(dir, { recursive: true, force: true });
    else console.log(`(kept ${dir} for inspection)`);
  }

  if (pageErrors.length > 0) results.failures.push(`uncaught errors in the page: ${pageErrors.join(" | ")}`);
  console.log("\npage load times (navigation until the main table or grid is visible):");
  for (const [name, ms] of timings) console.log(`  ${name.padEnd(12)} ${ms.toFixed(0).padStart(6)} ms`);
  console.log(`screenshots in ${ARTIFACTS}`);
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
