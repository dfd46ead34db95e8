-- Retraining jobs (keel/retrain/retrain.h): one row per job, its audit record
-- (trigger, data versions, gate scores, the alias it moved) as JSON in
-- details. Portable SQL; times are Unix milliseconds (finished_time 0 while
-- running).
CREATE TABLE retrain_jobs (
  job_id {{AUTO_ID}},
  model TEXT NOT NULL,
  trigger_name TEXT NOT NULL,
  actor TEXT NOT NULL,
  status TEXT NOT NULL,
  started_time BIGINT NOT NULL,
  finished_time BIGINT NOT NULL,
  details TEXT NOT NULL
);
CREATE INDEX retrain_jobs_by_model ON retrain_jobs (model, job_id);
CREATE INDEX retrain_jobs_by_status ON retrain_jobs (status);
