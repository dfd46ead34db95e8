PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL);
INSERT INTO schema_migrations VALUES(1,'tracking_registry',1790000000000);
CREATE TABLE sequences (
  name TEXT PRIMARY KEY,
  value BIGINT NOT NULL
);
INSERT INTO sequences VALUES('experiment_id',1);
INSERT INTO sequences VALUES('run_key',1);
CREATE TABLE experiments (
  experiment_id BIGINT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  artifact_location TEXT NOT NULL,
  lifecycle_stage TEXT NOT NULL,
  creation_time BIGINT NOT NULL,
  last_update_time BIGINT NOT NULL
);
INSERT INTO experiments VALUES(0,'Default','mlflow-artifacts:/0','active',0,0);
INSERT INTO experiments VALUES(1,'churn-v1','mlflow-artifacts:/1','active',1790000000000,1790000000000);
CREATE TABLE experiment_tags (
  experiment_id BIGINT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (experiment_id, key)
) WITHOUT ROWID;
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
INSERT INTO runs VALUES(1,'0123456789abcdef0123456789abcdef',1,'old-run-1','alice','FINISHED',1790000000000,1790000060000,'active','mlflow-artifacts:/1/0123456789abcdef0123456789abcdef/artifacts',NULL);
CREATE TABLE params (
  run_key BIGINT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_key, key)
) WITHOUT ROWID;
INSERT INTO params VALUES(1,'lr','0.05');
CREATE TABLE tags (
  run_key BIGINT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_key, key)
) WITHOUT ROWID;
INSERT INTO tags VALUES(1,'mlflow.runName','old-run-1');
CREATE TABLE metric_chunks (
  chunk_id INTEGER PRIMARY KEY,
  run_key BIGINT NOT NULL,
  key TEXT NOT NULL,
  n BIGINT NOT NULL,
  points BLOB NOT NULL
);
INSERT INTO metric_chunks VALUES(1,1,'auc',1,X'0000000000000000502f51c4a0010000c3f5285c8fc2ed3f');
CREATE TABLE latest_metrics (
  run_key BIGINT NOT NULL,
  key TEXT NOT NULL,
  step BIGINT NOT NULL,
  timestamp BIGINT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  is_nan SMALLINT NOT NULL,
  PRIMARY KEY (run_key, key)
) WITHOUT ROWID;
INSERT INTO latest_metrics VALUES(1,'auc',0,1790000050000,0.93000000000000004884,0);
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
) WITHOUT ROWID;
CREATE TABLE run_input_tags (
  run_key BIGINT NOT NULL,
  dataset_uuid TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_key, dataset_uuid, key)
) WITHOUT ROWID;
CREATE TABLE registered_models (
  name TEXT PRIMARY KEY,
  creation_time BIGINT NOT NULL,
  last_updated_time BIGINT NOT NULL,
  description TEXT NOT NULL
);
INSERT INTO registered_models VALUES('churn',1790000070000,1790000070000,'');
CREATE TABLE registered_model_tags (
  name TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (name, key)
) WITHOUT ROWID;
CREATE TABLE model_version_counters (
  name TEXT PRIMARY KEY,
  last_version BIGINT NOT NULL
);
INSERT INTO model_version_counters VALUES('churn',2);
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
INSERT INTO model_versions VALUES('churn',1,1790000070000,1790000070000,'','alice','None','mlflow-artifacts:/1/0123456789abcdef0123456789abcdef/artifacts/model','0123456789abcdef0123456789abcdef','','READY','');
INSERT INTO model_versions VALUES('churn',2,1790000080000,1790000080000,'','alice','Production','mlflow-artifacts:/1/0123456789abcdef0123456789abcdef/artifacts/model','0123456789abcdef0123456789abcdef','','READY','');
CREATE TABLE model_version_tags (
  name TEXT NOT NULL,
  version BIGINT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (name, version, key)
) WITHOUT ROWID;
CREATE TABLE registered_model_aliases (
  name TEXT NOT NULL,
  alias TEXT NOT NULL,
  version BIGINT NOT NULL,
  PRIMARY KEY (name, alias)
) WITHOUT ROWID;
INSERT INTO registered_model_aliases VALUES('churn','champion',2);
CREATE INDEX runs_by_experiment ON runs (experiment_id, lifecycle_stage, start_time DESC, run_uuid);
CREATE INDEX metric_chunks_by_key ON metric_chunks (run_key, key, chunk_id);
COMMIT;
