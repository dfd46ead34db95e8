-- Tracking and model registry (MLflow REST 2.0 data model).
-- Portable SQL: BIGINT ids, TEXT strings, DOUBLE PRECISION numbers;
-- {{WITHOUT_ROWID}} marks clustered primary-key tables (SQLite only);
-- {{AUTO_ID}} is an auto-assigned BIGINT primary key; {{BLOB}} a byte string.

CREATE TABLE sequences (
  name TEXT PRIMARY KEY,
  value BIGINT NOT NULL
);

CREATE TABLE experiments (
  experiment_id BIGINT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  artifact_location TEXT NOT NULL,
  lifecycle_stage TEXT NOT NULL,
  creation_time BIGINT NOT NULL,
  last_update_time BIGINT NOT NULL
);

CREATE TABLE experiment_tags (
  experiment_id BIGINT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (experiment_id, key)
) {{WITHOUT_ROWID}};

-- run_key: dense internal id used by the child tables; run_uuid: the public 32-hex id.
CREATE TABLE runs (
  run_key BIGINT PRIMARY KEY,
  run_uuid TEXT NOT NULL UNIQUE,
  experiment_id BIGINT NOT NULL,
  name TEXT NOT NULL,
  user_id TEXT NOT NULL,
  status TEXT NOT NULL,
  start_time BIGINT,
  end_time BIGINT,
  lifecycle_stage TEXT NOT NULL,
  artifact_uri TEXT NOT NULL,
  deleted_time BIGINT
);
-- Serves the default search order (start_time DESC, run_uuid) without a sort.
CREATE INDEX runs_by_experiment ON runs (experiment_id, lifecycle_stage, start_time DESC, run_uuid);

CREATE TABLE params (
  run_key BIGINT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_key, key)
) {{WITHOUT_ROWID}};

CREATE TABLE tags (
  run_key BIGINT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_key, key)
) {{WITHOUT_ROWID}};

-- Every logged point, written in chunks: one row per (run, key) per write
-- call. points holds n records of 24 bytes, little-endian: step int64,
-- timestamp int64, value float64 (NaN kept as NaN). Readers merge the chunks,
-- order by (step, timestamp, value) and drop identical points (as MLflow does).
CREATE TABLE metric_chunks (
  chunk_id {{AUTO_ID}},
  run_key BIGINT NOT NULL,
  key TEXT NOT NULL,
  n BIGINT NOT NULL,
  points {{BLOB}} NOT NULL
);
CREATE INDEX metric_chunks_by_key ON metric_chunks (run_key, key, chunk_id);

-- The latest point per key: max by (step, timestamp, value).
CREATE TABLE latest_metrics (
  run_key BIGINT NOT NULL,
  key TEXT NOT NULL,
  step BIGINT NOT NULL,
  timestamp BIGINT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  is_nan SMALLINT NOT NULL,
  PRIMARY KEY (run_key, key)
) {{WITHOUT_ROWID}};

CREATE TABLE datasets (
  dataset_uuid TEXT PRIMARY KEY,
  experiment_id BIGINT NOT NULL,
  name TEXT NOT NULL,
  digest TEXT NOT NULL,
  source_type TEXT NOT NULL,
  source TEXT NOT NULL,
  schema_json TEXT,
  profile TEXT,
  UNIQUE (experiment_id, name, digest)
);

CREATE TABLE run_inputs (
  run_key BIGINT NOT NULL,
  dataset_uuid TEXT NOT NULL,
  PRIMARY KEY (run_key, dataset_uuid)
) {{WITHOUT_ROWID}};

CREATE TABLE run_input_tags (
  run_key BIGINT NOT NULL,
  dataset_uuid TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_key, dataset_uuid, key)
) {{WITHOUT_ROWID}};

CREATE TABLE registered_models (
  name TEXT PRIMARY KEY,
  creation_time BIGINT NOT NULL,
  last_updated_time BIGINT NOT NULL,
  description TEXT NOT NULL
);

CREATE TABLE registered_model_tags (
  name TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (name, key)
) {{WITHOUT_ROWID}};

-- Survives deletion of the model so version numbers are never reused.
CREATE TABLE model_version_counters (
  name TEXT PRIMARY KEY,
  last_version BIGINT NOT NULL
);

CREATE TABLE model_versions (
  name TEXT NOT NULL,
  version BIGINT NOT NULL,
  creation_time BIGINT NOT NULL,
  last_updated_time BIGINT NOT NULL,
  description TEXT NOT NULL,
  user_id TEXT NOT NULL,
  current_stage TEXT NOT NULL,
  source TEXT NOT NULL,
  run_id TEXT NOT NULL,
  run_link TEXT NOT NULL,
  status TEXT NOT NULL,
  status_message TEXT NOT NULL,
  PRIMARY KEY (name, version)
);

CREATE TABLE model_version_tags (
  name TEXT NOT NULL,
  version BIGINT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (name, version, key)
) {{WITHOUT_ROWID}};

CREATE TABLE registered_model_aliases (
  name TEXT NOT NULL,
  alias TEXT NOT NULL,
  version BIGINT NOT NULL,
  PRIMARY KEY (name, alias)
) {{WITHOUT_ROWID}};

INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', 0, 0);
INSERT INTO sequences (name, value) VALUES ('experiment_id', 0);
INSERT INTO sequences (name, value) VALUES ('run_key', 0);
