-- The retraining scheduler's state (keel/retrain/scheduler.h): per model, the
-- last cron slot fired (Unix ms), so a restart neither repeats nor forgets a
-- scheduled run.
CREATE TABLE retrain_schedule (
  model TEXT NOT NULL PRIMARY KEY,
  last_slot BIGINT NOT NULL
) {{WITHOUT_ROWID}};
