-- Cancellation from any process sharing the store (keel/retrain/retrain.h,
-- RequestCancel): who asked to cancel a running retraining job, and why
-- ('' when nobody did). The job's own process reads it with each heartbeat
-- and stops the job; a takeover ends such a job `cancelled` instead of
-- running it again.
ALTER TABLE retrain_jobs ADD COLUMN cancel_requested TEXT NOT NULL DEFAULT '';
