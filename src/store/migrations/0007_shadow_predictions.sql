-- Shadow predictions (keel/serve/shadow.h): while a retraining job's
-- challenger is in its shadow phase, it scores the requests the champion
-- answers, without answering; one row per request id and shadow version.
-- output is the challenger's answer as JSON text ("null" when it failed, with
-- the reason in error); latency_us its scoring time for the row. Joined with
-- predictions and labels by request_id to compare the two.
CREATE TABLE shadow_predictions (
  request_id TEXT NOT NULL,
  version TEXT NOT NULL,
  model TEXT NOT NULL,
  time BIGINT NOT NULL,
  output TEXT NOT NULL,
  latency_us DOUBLE PRECISION NOT NULL,
  error TEXT NOT NULL,
  PRIMARY KEY (request_id, version)
);
CREATE INDEX shadow_predictions_by_model_version_time
  ON shadow_predictions (model, version, time);
