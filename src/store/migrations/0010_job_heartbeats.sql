-- Replicas (keel/retrain/retrain.h, HeartbeatJobs / TakeOverStaleWork): the
-- process running a job ("host:pid") renews `heartbeat` while it runs; a
-- running job whose heartbeat stopped is taken over by the scheduler's
-- lease holder. 0: a job from before this migration (never taken over).
ALTER TABLE retrain_jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE retrain_jobs ADD COLUMN heartbeat BIGINT NOT NULL DEFAULT 0;
