-- Prediction log and ground-truth labels (keel/serve/prediction_log.h).
-- Portable SQL (SQLite and PostgreSQL); times are Unix milliseconds.

-- One row per served prediction, written in batches by the prediction log's
-- writer. input is the raw input record as a JSON object, output the answer
-- as JSON text; the first record for a request id wins (later ones are
-- skipped). Read per model in time order.
CREATE TABLE predictions (
  request_id TEXT PRIMARY KEY,
  time BIGINT NOT NULL,
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  input TEXT NOT NULL,
  output TEXT NOT NULL,
  latency_us DOUBLE PRECISION NOT NULL
);
CREATE INDEX predictions_by_model_time ON predictions (model, time);

-- The ground truth for a logged prediction: a JSON scalar (number, string or
-- boolean) as minified text, and when it was recorded. A new label for the
-- same request id replaces the old one.
CREATE TABLE labels (
  request_id TEXT PRIMARY KEY,
  label TEXT NOT NULL,
  time BIGINT NOT NULL
) {{WITHOUT_ROWID}};
