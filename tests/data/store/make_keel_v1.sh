#!/usr/bin/env bash
# Writes keel-v1.sql: a dump of a database at schema version 1 (as keel 0.1's
# first migration created it) with a little tracking and registry data.
# store_test.cc loads it and checks that opening it upgrades it without loss.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/{{WITHOUT_ROWID}}/WITHOUT ROWID/g; s/{{BLOB}}/BLOB/g; s/{{AUTO_ID}}/INTEGER PRIMARY KEY/g' \
  "$here/../../../src/store/migrations/0001_tracking_registry.sql" > "$tmp/schema.sql"
sqlite3 "$tmp/v1.db" <<SQL
CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL);
.read $tmp/schema.sql
INSERT INTO schema_migrations VALUES (1, 'tracking_registry', 1790000000000);
INSERT INTO experiments VALUES (1, 'churn-v1', 'mlflow-artifacts:/1', 'active', 1790000000000, 1790000000000);
UPDATE sequences SET value = 1 WHERE name = 'experiment_id';
INSERT INTO runs VALUES (1, '0123456789abcdef0123456789abcdef', 1, 'old-run-1', 'alice', 'FINISHED', 1790000000000, 1790000060000, 'active', 'mlflow-artifacts:/1/0123456789abcdef0123456789abcdef/artifacts', NULL);
UPDATE sequences SET value = 1 WHERE name = 'run_key';
INSERT INTO params VALUES (1, 'lr', '0.05');
INSERT INTO tags VALUES (1, 'mlflow.runName', 'old-run-1');
-- one point: step 0, timestamp 1790000050000, value 0.93 (24 bytes little-endian)
INSERT INTO metric_chunks VALUES (1, 1, 'auc', 1, X'0000000000000000502F51C4A0010000C3F5285C8FC2ED3F');
INSERT INTO latest_metrics VALUES (1, 'auc', 0, 1790000050000, 0.93, 0);
INSERT INTO registered_models VALUES ('churn', 1790000070000, 1790000070000, '');
INSERT INTO model_version_counters VALUES ('churn', 2);
INSERT INTO model_versions VALUES ('churn', 1, 1790000070000, 1790000070000, '', 'alice', 'None', 'mlflow-artifacts:/1/0123456789abcdef0123456789abcdef/artifacts/model', '0123456789abcdef0123456789abcdef', '', 'READY', '');
INSERT INTO model_versions VALUES ('churn', 2, 1790000080000, 1790000080000, '', 'alice', 'Production', 'mlflow-artifacts:/1/0123456789abcdef0123456789abcdef/artifacts/model', '0123456789abcdef0123456789abcdef', '', 'READY', '');
INSERT INTO registered_model_aliases VALUES ('churn', 'champion', 2);
SQL
sqlite3 "$tmp/v1.db" .dump > "$here/keel-v1.sql"
echo "wrote $here/keel-v1.sql"
