// Shared by the browser tests (tests/browser/*_test.mjs): checks and steps,
// a keel server on a temporary store, seeding helpers, playwright-core.
//
// Environment: KEEL_BINARY (default build/keel), KEEL_SHARED_DIR (default
// ../shared; reads data/mlc_churn.csv), KEEL_TEST_ARTIFACTS (screenshots;
// default build/test-artifacts/browser), CHROMIUM (default /usr/bin/chromium),
// KEEL_WEB_DIR (optional: a built bundle served through dev_proxy.mjs in
// front of a keel that does not serve the dashboard itself).
import { execFile, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const BINARY = path.resolve(process.env.KEEL_BINARY || path.join(REPO, "build", "keel"));
export const SHARED = path.resolve(process.env.KEEL_SHARED_DIR || path.join(REPO, "..", "shared"));
export const ARTIFACTS = path.resolve(process.env.KEEL_TEST_ARTIFACTS || path.join(REPO, "build", "test-artifacts", "browser"));
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const WEB_DIR = process.env.KEEL_WEB_DIR ? path.resolve(process.env.KEEL_WEB_DIR) : "";
export const CHURN_CSV = path.join(SHARED, "data", "mlc_churn.csv");

const execFileP = promisify(execFile);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ checks

export const results = { passed: 0, failures: [] };

export class Failure extends Error {}

export function check(cond, what) {
  if (!cond) throw new Failure(what);
  results.passed++;
  console.log(`  ok  ${what}`);
}

/** Runs one step; a failure is recorded and ends the test (later steps depend on earlier ones). */
export async function step(name, fn) {
  console.log(`- ${name}`);
  try {
    await fn();
  } catch (e) {
    results.failures.push(`${name}: ${e instanceof Failure ? e.message : e && e.stack ? e.stack : e}`);
    throw new Failure(`step failed: ${name}`);
  }
}

export async function waitFor(what, fn, timeoutMs = 15000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Failure(`timed out waiting for ${what}${last ? ` (${last.message ?? last})` : ""}`);
    await sleep(everyMs);
  }
}

// ------------------------------------------------------------------ data

/** RFC 4180 enough for mlc_churn.csv (quoted strings, no embedded newlines). */
export function parseCsv(text) {
  const rows = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line) continue;
    const out = [];
    let cur = "";
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (quoted) {
        if (c === '"' && line[i + 1] === '"') {
          cur += '"';
          i++;
        } else if (c === '"') quoted = false;
        else cur += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") {
        out.push(cur);
        cur = "";
      } else cur += c;
    }
    out.push(cur);
    rows.push(out);
  }
  return rows;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ------------------------------------------------------------------ keel

const liveServers = new Set();

export class Keel {
  constructor(dir, extraArgs = []) {
    this.dir = dir;
    this.extraArgs = extraArgs;
    this.dbPath = path.join(dir, "keel.db");
    this.store = `sqlite:///${this.dbPath.replace(/^\/+/, "")}`;
    this.artifactRoot = path.join(dir, "artifacts");
    this.proc = null;
    this.url = "";
    this.agent = null;
  }

  async cli(...args) {
    try {
      const { stdout } = await execFileP(BINARY, ["--store-uri", this.store, "--artifact-root", this.artifactRoot, ...args], { timeout: 120000 });
      return stdout;
    } catch (e) {
      throw new Failure(`keel ${args.join(" ")} failed: ${e.stderr || e.message}`);
    }
  }

  async start() {
    const port = await freePort();
    this.url = `http://127.0.0.1:${port}`;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    this.logPath = path.join(this.dir, `server-${port}.log`);
    const log = openSync(this.logPath, "w");
    this.proc = spawn(
      BINARY,
      ["server", "--port", String(port), "--store-uri", this.store, "--artifact-root", this.artifactRoot, ...this.extraArgs],
      { stdio: ["ignore", log, log] },
    );
    closeSync(log);
    liveServers.add(this.proc);
    const proc = this.proc;
    this.exited = new Promise((resolve) =>
      proc.once("exit", (code, signal) => {
        liveServers.delete(proc);
        resolve(code ?? signal);
      }),
    );
    const deadline = Date.now() + 30000;
    for (;;) {
      if (this.proc.exitCode !== null) throw new Failure(`keel server exited: ${readFileSync(this.logPath, "utf8")}`);
      try {
        if ((await fetch(`${this.url}/health`)).status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Failure(`keel server did not become healthy: ${readFileSync(this.logPath, "utf8")}`);
      await sleep(50);
    }
  }

  async stop() {
    this.agent?.destroy();
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const done = await Promise.race([this.exited, sleep(15000).then(() => "timeout")]);
    if (done === "timeout") {
      this.proc.kill("SIGKILL");
      await this.exited;
    }
  }

  async api(method, pathAndQuery, body, headers = {}) {
    const resp = await fetch(this.url + pathAndQuery, {
      method,
      headers: { ...(body !== undefined ? { "Content-Type": "application/json" } : {}), ...headers },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await resp.text();
    if (!resp.ok) throw new Failure(`${method} ${pathAndQuery} -> ${resp.status}: ${text}`);
    return text ? JSON.parse(text) : {};
  }

  /**
   * POST through node:http on kept-alive connections: a fraction of fetch's
   * client cost, for seeding thousands of requests.
   */
  post(pathAndQuery, body) {
    const data = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        this.url + pathAndQuery,
        { method: "POST", agent: this.agent, headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) } },
        (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            if (res.statusCode >= 300) reject(new Failure(`POST ${pathAndQuery} -> ${res.statusCode}: ${text}`));
            else resolve(text ? JSON.parse(text) : {});
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(data);
    });
  }

  async championVersion() {
    const r = await this.api("GET", "/api/2.0/mlflow/registered-models/alias?name=churn&alias=champion");
    return r.model_version.version;
  }
}

/** Kills the servers still running when the test is interrupted. */
export function stopServersOnSignals() {
  for (const sig of ["SIGINT", "SIGTERM"]) {
    process.on(sig, () => {
      for (const p of liveServers) p.kill("SIGKILL");
      console.log(`interrupted (${sig})`);
      process.exit(1);
    });
  }
}

/**
 * Scores `rows` of mlc_churn.csv through /predict/churn@champion in one
 * request (each record passed through `edit` first), then posts their labels.
 */
export async function predictAndLabel(keel, header, rows, edit = (rec) => rec) {
  const target = header.indexOf("churn");
  const records = rows.map((r) => {
    const rec = {};
    header.forEach((k, i) => {
      if (i === target) return;
      const v = r[i];
      const n = Number(v);
      rec[k] = v !== "" && Number.isFinite(n) ? n : v;
    });
    return edit(rec, r);
  });
  const out = await keel.api("POST", "/predict/churn@champion", records);
  const labels = rows.map((r, i) => ({ request_id: `${out.request_id}-${i}`, label: r[target] }));
  await waitFor("the prediction log to take the labels", async () => {
    const resp = await keel.api("POST", "/labels", { labels });
    return resp.matched === labels.length;
  }, 15000, 100);
  return out;
}

// ------------------------------------------------------------------ browser

export function loadPlaywright() {
  const require = createRequire(path.join(REPO, "web", "package.json"));
  try {
    return require("playwright-core");
  } catch (e) {
    throw new Failure(`playwright-core not found: run 'npm ci' in web/ (${e.message})`);
  }
}

/**
 * The dashboard's base URL: keel's own, or (KEEL_WEB_DIR set and keel
 * serving no dashboard) dev_proxy.mjs in front of it. Registers the proxy's
 * close in `cleanups`.
 */
export async function dashboardBase(keelUrl, cleanups) {
  const html = await (await fetch(`${keelUrl}/`)).text();
  if (html.includes("/ui/app.js")) return keelUrl;
  if (!WEB_DIR) {
    throw new Failure(
      `GET / on ${BINARY} does not return the dashboard (got: ${html.slice(0, 120)}); build keel with the web bundle, or set KEEL_WEB_DIR to a built bundle (node web/build.mjs DIR) to test through tests/browser/dev_proxy.mjs`,
    );
  }
  const { startDevProxy } = await import("./dev_proxy.mjs");
  const proxy = await startDevProxy({ webDir: WEB_DIR, target: keelUrl });
  cleanups.push(() => proxy.close());
  console.log(`  (keel does not serve / yet: the bundle in ${WEB_DIR} through ${proxy.url})`);
  return proxy.url;
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

export async function rowCount(page, selector) {
  return page.locator(selector).count();
}

/** Prints the failures and the totals; returns the exit code. */
export function finish() {
  for (const f of results.failures) console.log(`FAIL ${f}`);
  console.log(`${results.passed} passed, ${results.failures.length} failed`);
  return results.failures.length === 0 ? 0 : 1;
}
