// The server's JSON API as typed calls. Same origin; a bearer token from
// localStorage when one was given. A 401 asks for a token (auth.ts) and retries.

const TOKEN_KEY = "keel.token";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export function getToken(): string | null {
  try {
    return window.localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string | null): void {
  try {
    if (token) window.localStorage.setItem(TOKEN_KEY, token);
    else window.localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token lives for this page only.
  }
}

/** Asks for a token; resolves true when a new one was stored (then the call is retried). */
type TokenPrompt = (reason: string) => Promise<boolean>;
let tokenPrompt: TokenPrompt = async () => false;

export function onUnauthorized(prompt: TokenPrompt): void {
  tokenPrompt = prompt;
}

type Query = Record<string, string | number | boolean | undefined | null | string[]>;

function queryString(q: Query | undefined): string {
  if (!q) return "";
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) for (const item of v) p.append(k, item);
    else p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : "";
}

function authHeaders(): Record<string, string> {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function errorOf(resp: Response): Promise<ApiError> {
  let code = `HTTP_${resp.status}`;
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const text = await resp.text();
    try {
      const body = JSON.parse(text) as { error_code?: string; message?: string };
      if (body.error_code) code = body.error_code;
      if (body.message) message = body.message;
    } catch {
      if (text) message = text.slice(0, 300);
    }
  } catch {
    // Keep the status line.
  }
  return new ApiError(resp.status, code, message);
}

async function send(method: string, path: string, query?: Query, body?: unknown): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const headers: Record<string, string> = { ...authHeaders() };
    const init: RequestInit = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path + queryString(query), init);
    if (resp.status === 401 && attempt < 3) {
      const err = await errorOf(resp);
      if (await tokenPrompt(err.message)) continue;
      throw err;
    }
    if (!resp.ok) throw await errorOf(resp);
    return resp;
  }
}

export async function getJson<T>(path: string, query?: Query): Promise<T> {
  return (await (await send("GET", path, query)).json()) as T;
}

export async function postJson<T>(path: string, body: unknown): Promise<T> {
  return (await (await send("POST", path, undefined, body)).json()) as T;
}

export async function getText(path: string): Promise<string> {
  return (await send("GET", path)).text();
}

export async function getBlob(path: string): Promise<Blob> {
  return (await send("GET", path)).blob();
}

const MLFLOW = "/api/2.0/mlflow";
const KEEL = "/api/2.0/keel";

// ---------------------------------------------------------------- types

/** MLflow writes NaN and infinities as strings. */
export type JsonNumber = number | string;

export function num(v: JsonNumber | null | undefined): number {
  if (v === null || v === undefined) return NaN;
  return typeof v === "number" ? v : Number(v);
}

export interface KeyValue {
  key: string;
  value: string;
}

export interface Metric {
  key: string;
  value: JsonNumber;
  timestamp: number;
  step: number;
}

export interface Experiment {
  experiment_id: string;
  name: string;
  artifact_location?: string;
  lifecycle_stage: string;
  last_update_time?: number;
  creation_time?: number;
  tags?: KeyValue[];
}

export interface RunInfo {
  run_id: string;
  run_uuid: string;
  experiment_id: string;
  run_name?: string;
  user_id?: string;
  status: string;
  start_time?: number;
  end_time?: number;
  artifact_uri: string;
  lifecycle_stage: string;
}

export interface DatasetInput {
  tags?: KeyValue[];
  dataset: { name: string; digest: string; source_type?: string; source?: string; schema?: string; profile?: string };
}

export interface Run {
  info: RunInfo;
  data: { metrics?: Metric[]; params?: KeyValue[]; tags?: KeyValue[] };
  inputs?: { dataset_inputs?: DatasetInput[] };
}

export interface RunsPage {
  runs?: Run[];
  next_page_token?: string;
}

export interface ModelVersion {
  name: string;
  version: string;
  creation_timestamp: number;
  last_updated_timestamp?: number;
  user_id?: string;
  current_stage?: string;
  description?: string;
  source?: string;
  run_id?: string;
  status?: string;
  aliases?: string[];
  tags?: KeyValue[];
}

export interface RegisteredModel {
  name: string;
  creation_timestamp: number;
  last_updated_timestamp?: number;
  description?: string;
  latest_versions?: ModelVersion[];
  aliases?: Array<{ alias: string; version: string }>;
  tags?: KeyValue[];
}

export interface AliasChange {
  id: number;
  name: string;
  alias: string;
  from_version?: string;
  to_version?: string;
  actor: string;
  reason: string;
  time: number;
}

export interface ArtifactFile {
  path: string;
  is_dir: boolean;
  file_size?: number;
}

/** GET /api/2.0/keel/whoami: who the request's credentials name (null: none, or not accepted). */
export interface Whoami {
  auth: boolean;
  name: string | null;
  role: "read" | "write" | null;
}

/** Whether to offer changes (the server decides anyway). */
export function canWrite(user: Whoami): boolean {
  return user.role === "write" || (!user.auth && user.role === null);
}

/** Auth is on and the stored token (if any) names nobody: ask for one. */
export function needsToken(user: Whoami): boolean {
  return user.auth && user.role === null;
}

export type MetricMap = Record<string, number | null>;

export interface WindowColumn {
  name: string;
  role: string;
  test: string | null;
  score: number | null;
  threshold: number | null;
  drift: boolean | null;
}

export interface WindowPerformance {
  labelled: number;
  unmatched_labels: number;
  live: MetricMap;
  reference: MetricMap;
  estimated: MetricMap;
}

export interface WindowOperational {
  predictions: number;
  seconds: number | null;
  rate_per_s: number | null;
  latency_us: { p50: number | null; p95: number | null; p99: number | null; max: number | null };
  endpoints: Record<string, number>;
}

export interface Histogram {
  edges?: Array<number | null>;
  labels?: string[];
  reference: number[];
  current: number[];
}

export interface ReportColumn {
  name: string;
  kind: string;
  role: string;
  rows: { reference: number; current: number };
  error?: string;
  test: string;
  direction: string;
  threshold: number | null;
  score?: number | null;
  statistic?: number | null;
  drift?: boolean;
  missing: { reference: number | null; current: number | null; change: number | null };
  unseen?: { categories: string[]; rows: number; share: number | null };
  extra: Record<string, { error?: string; score?: number | null; statistic?: number | null; drift?: boolean }>;
  histogram: Histogram;
}

export interface WindowReportJson {
  rows: number;
  truncated: boolean;
  unreadable: number;
  drift: {
    preset: string;
    reference: { name: string; rows: number };
    current: { name: string; rows: number };
    columns: ReportColumn[];
  };
}

/** The parts of a window summary the server can leave out (monitor/windows `fields=`). */
export type WindowField = "rows" | "performance" | "operational" | "drift";

/** One step of GET /api/2.0/keel/serving/requests (request outcome counts of every replica). */
export interface RequestPoint {
  time_ms: number;
  requests: number;
  client_errors: number;
  server_errors: number;
}

/** GET /api/2.0/keel/monitor/window-kinds: a version and window length with stored windows. */
export interface WindowKind {
  version: string;
  window_ms: number;
  windows: number;
  newest_to_ms: number;
}

export interface StoredWindow {
  id: number;
  model: string;
  version: string;
  from_ms: number;
  to_ms: number;
  computed_ms: number;
  rows: number | null;
  performance: WindowPerformance | null;
  operational: WindowOperational | null;
  dataset: { columns: number; drifted: number; share: number | null; drift_share: number | null; drift: boolean } | null;
  prediction_drift: boolean | null;
  columns?: WindowColumn[];
  report?: WindowReportJson;
}

/** Windows asked per request when paging back through a history (keyset paging, before_id). */
export const HISTORY_PAGE = 500;

/**
 * The newest stored windows of one length (of one version, or of all), newest first: paged back
 * with before_id until `days` days before the newest one's computed time or `max` windows are
 * loaded, or fewer when there are fewer.
 */
export async function windowHistory(q: { model: string; version?: string; windowMs: number; fields?: WindowField[]; max: number; days: number }): Promise<StoredWindow[]> {
  const out: StoredWindow[] = [];
  let sinceMs: number | undefined;
  let beforeId: number | undefined;
  while (out.length < q.max) {
    const limit = Math.min(HISTORY_PAGE, q.max - out.length);
    const page = await api.windows({ model: q.model, version: q.version, windowMs: q.windowMs, fields: q.fields, limit, beforeId, sinceMs });
    for (const w of page) {
      if (sinceMs === undefined) sinceMs = w.computed_ms - q.days * 86400000;
      if (w.computed_ms < sinceMs) return out;
      out.push(w);
    }
    const last = page[page.length - 1];
    if (page.length < limit || !last) break;
    beforeId = last.id;
  }
  return out;
}

export interface Alert {
  id: number;
  model: string;
  version: string;
  rule: string;
  severity: string;
  metric: string;
  op: string;
  value: number | null;
  threshold: number | null;
  window_ms: number;
  first_ms: number;
  last_ms: number;
  count: number;
  summary: string;
}

export interface ServedModel {
  ref: string;
  version: string;
  loaded_at: number;
  loads: number;
  failures: number;
  swaps: number;
  shadow_version?: string;
  shadow_failed_version?: string;
  last_error?: string;
  failed_version?: string;
  last_error_at?: number;
}

export interface ServingStatus {
  ready: boolean;
  models: ServedModel[];
  prediction_log?: {
    durability: string;
    sample_rate: number;
    queued: number;
    written: number;
    dropped: number;
    failed: number;
  };
}

export interface GateDecision {
  passed: boolean;
  metric: string;
  champion: number | null;
  challenger: number | null;
  holdout_rows: number;
  non_finite: number;
  reason: string;
  metrics: Array<{ name: string; champion: number | null; challenger: number | null }>;
}

export interface RetrainJob {
  id: number;
  model: string;
  trigger: string;
  actor: string;
  status: string;
  started_ms: number;
  finished_ms: number;
  run_id: string;
  challenger_version: string;
  champion_version: string;
  promote_alias: string;
  message: string;
  host: string;
  pid: number;
  data: Array<{ role: string; path: string; sha256: string; rows: number; from_ms: number; to_ms: number }>;
  /** What the job did, step by step, and a command trainer's output tail. */
  log?: Array<{ time_ms: number; text: string }>;
  gate: GateDecision | null;
  shadow?: {
    started_ms: number;
    ends_ms: number;
    requests: number;
    errors: number;
    agreement: number | null;
    mean_abs_diff: number | null;
    labeled_rows: number;
    live: GateDecision | null;
    passed: boolean;
    reason: string;
  };
}

/** GET /api/2.0/keel/retrain/policies: the server's retraining policies and their scheduling state. */
export interface RetrainPolicy {
  model: string;
  /** A cron expression, or null without a schedule. */
  schedule: string | null;
  timezone: string;
  missed: string;
  on_alerts: string[];
  /** 0: no continuous mode. */
  continuous_every_ms: number;
  gate: { metric: string; min_delta: number; max_regression: number; min_rows: number };
  /** 0: no shadow phase / no watch. */
  shadow_ms: number;
  watch_ms: number;
  promote: string;
  source: string;
  /** -1: none. */
  last_slot_ms: number;
  next_slot_ms: number;
  next_continuous_ms: number;
  state: "idle" | "queued" | "running" | string;
}

export interface RetrainPolicies {
  scheduler: boolean;
  /** This replica holds the store's scheduler lease (fires schedules); absent on older servers. */
  leader?: boolean;
  policies: RetrainPolicy[];
}

// ---------------------------------------------------------------- calls

export const api = {
  version: () => getText("/version"),

  async whoami(): Promise<Whoami> {
    try {
      return await getJson<Whoami>(`${KEEL}/whoami`);
    } catch (e) {
      // A server without the endpoint: assume an open server (it refuses writes anyway if not).
      if (e instanceof ApiError && e.status === 404) return { auth: false, name: null, role: null };
      throw e;
    }
  },

  searchExperiments: (maxResults = 200, pageToken?: string) =>
    getJson<{ experiments?: Experiment[]; next_page_token?: string }>(`${MLFLOW}/experiments/search`, {
      max_results: maxResults,
      page_token: pageToken,
    }),

  searchRuns: (req: { experiment_ids: string[]; filter?: string; order_by?: string[]; max_results: number; page_token?: string }) =>
    postJson<RunsPage>(`${MLFLOW}/runs/search`, req),

  getRun: async (runId: string) => (await getJson<{ run: Run }>(`${MLFLOW}/runs/get`, { run_id: runId })).run,

  metricHistoryPage: (runId: string, key: string, pageToken?: string) =>
    getJson<{ metrics?: Metric[]; next_page_token?: string }>(`${MLFLOW}/metrics/get-history`, {
      run_id: runId,
      metric_key: key,
      max_results: 25000,
      page_token: pageToken,
    }),

  listArtifacts: (runId: string, path: string) =>
    getJson<{ root_uri?: string; files?: ArtifactFile[] }>(`${MLFLOW}/artifacts/list`, {
      run_id: runId,
      path: path || undefined,
    }),

  searchModels: (filter: string, maxResults: number, pageToken?: string) =>
    getJson<{ registered_models?: RegisteredModel[]; next_page_token?: string }>(`${MLFLOW}/registered-models/search`, {
      filter: filter || undefined,
      max_results: maxResults,
      page_token: pageToken,
    }),

  getModel: async (name: string) =>
    (await getJson<{ registered_model: RegisteredModel }>(`${MLFLOW}/registered-models/get`, { name })).registered_model,

  searchVersions: (filter: string, maxResults: number, pageToken?: string) =>
    getJson<{ model_versions?: ModelVersion[]; next_page_token?: string }>(`${MLFLOW}/model-versions/search`, {
      filter,
      max_results: maxResults,
      page_token: pageToken,
      order_by: "version_number DESC",
    }),

  aliasHistory: async (name: string) =>
    (await getJson<{ changes?: AliasChange[] }>(`${KEEL}/registered-models/alias-history`, { name })).changes ?? [],

  setAlias: (name: string, alias: string, version: string, reason: string) =>
    postJson<object>(`${MLFLOW}/registered-models/alias`, { name, alias, version, reason }),

  rollback: async (name: string, alias: string, reason: string) =>
    (await postJson<{ change: AliasChange }>(`${KEEL}/registered-models/rollback`, { name, alias, reason })).change,

  /**
   * Stored monitoring windows, newest first (by computed time, then id). window_ms keeps one
   * length, beforeId pages back (the windows after that id), untilMs bounds computed time
   * (exclusive), id reads one window, fields keeps those parts of each summary.
   */
  windows: async (q: {
    model: string;
    version?: string;
    limit: number;
    full?: boolean;
    sinceMs?: number;
    untilMs?: number;
    windowMs?: number;
    beforeId?: number;
    id?: number;
    fields?: WindowField[];
  }) =>
    (
      await getJson<{ windows?: StoredWindow[] }>(`${KEEL}/monitor/windows`, {
        model: q.model,
        version: q.version,
        id: q.id,
        window_ms: q.windowMs,
        before_id: q.beforeId,
        since_ms: q.sinceMs,
        until_ms: q.untilMs,
        limit: q.limit,
        fields: q.fields ? q.fields.join(",") : undefined,
        full: q.full ? "true" : undefined,
      })
    ).windows ?? [],

  windowKinds: async (model: string) =>
    (await getJson<{ kinds?: WindowKind[] }>(`${KEEL}/monitor/window-kinds`, { model })).kinds ?? [],

  alerts: async (model: string | undefined, limit: number) =>
    (await getJson<{ alerts?: Alert[] }>(`${KEEL}/alerts`, { model, limit })).alerts ?? [],

  serving: () => getJson<ServingStatus>(`${KEEL}/serving`),

  requestCounts: async (q: { model: string; fromMs: number; toMs: number; stepMs: number }) =>
    (
      await getJson<{ points?: RequestPoint[] }>(`${KEEL}/serving/requests`, {
        model: q.model,
        from_ms: q.fromMs,
        to_ms: q.toMs,
        step_ms: q.stepMs,
      })
    ).points ?? [],

  prometheus: () => getText("/metrics"),

  retrainJobs: async (model: string | undefined, limit: number) =>
    (await getJson<{ jobs?: RetrainJob[] }>(`${KEEL}/retrain/jobs`, { model, limit })).jobs ?? [],

  retrainPolicies: () => getJson<RetrainPolicies>(`${KEEL}/retrain/policies`),

  triggerRetrain: (model: string) => postJson<{ queued: boolean }>(`${KEEL}/retrain/jobs`, { model }),
};

/** Every point of a metric's history (paged); at most `cap` points. */
export async function metricHistory(runId: string, key: string, cap = 100000): Promise<Metric[]> {
  const out: Metric[] = [];
  let token: string | undefined;
  do {
    const page = await api.metricHistoryPage(runId, key, token);
    out.push(...(page.metrics ?? []));
    token = page.next_page_token || undefined;
  } while (token && out.length < cap);
  return out;
}

/**
 * The download URL of a run artifact: a run's artifact_uri is
 * "mlflow-artifacts:/<path in the artifact root>", served by the
 * mlflow-artifacts proxy at /api/2.0/mlflow-artifacts/artifacts/<path>.
 * Returns null for URIs of other schemes.
 */
export function artifactUrl(artifactUri: string, relPath: string): string | null {
  const prefix = "mlflow-artifacts:";
  if (!artifactUri.startsWith(prefix)) return null;
  const root = artifactUri.slice(prefix.length).replace(/^\/+/, "").replace(/\/+$/, "");
  const full = relPath ? `${root}/${relPath}` : root;
  return `/api/2.0/mlflow-artifacts/artifacts/${full.split("/").map(encodeURIComponent).join("/")}`;
}

/** Quotes a string for the search filter grammar. */
export function quote(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** A params./metrics. key in backticks when it is not a plain identifier. */
export function keyRef(entity: "params" | "metrics" | "tags", key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${entity}.${key}` : `${entity}.\`${key}\``;
}
