-- The retraining scheduler's durable queue (keel/retrain/scheduler.h,
-- keel/retrain/retrain.h QueuedJob): a job waiting to run is a retrain_jobs
-- row in status 'queued', owned (owner, heartbeat) by the process that will
-- run it; starting it turns the same row into the running job. attempt: the
-- attempt number (a retry's is 2 or more); not_before: Unix ms before which
-- it does not start (a retry's backoff); continuous: 1 for a continuous
-- update. Rows from before this migration read as attempt 1, no wait, full.
ALTER TABLE retrain_jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE retrain_jobs ADD COLUMN not_before BIGINT NOT NULL DEFAULT 0;
ALTER TABLE retrain_jobs ADD COLUMN continuous INTEGER NOT NULL DEFAULT 0;
