-- The monitoring pass's pieces (src/monitor/live/pieces.h): per model version
-- and bucket of its prediction log, the bucket's window profile
-- (keel/monitor/window_profile.h, EncodeProfile), so that a restarted server
-- or a new monitoring leader merges long windows from them instead of
-- rereading the log. bucket_ms is the bucket length, start_time the bucket's
-- start (Unix ms). counted_only (0/1): beyond the pass's max_rows only the
-- bucket's row count is kept and profile is empty. labels_time: labels
-- recorded before it (less the pass's settle time) are in the profile.
-- Rows of buckets older than the longest rule window are deleted by the
-- passes. A rowid table (profiles run to kilobytes, too large for SQLite's
-- WITHOUT ROWID layout).
CREATE TABLE window_profiles (
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  bucket_ms BIGINT NOT NULL,
  start_time BIGINT NOT NULL,
  row_count BIGINT NOT NULL,
  counted_only BIGINT NOT NULL,
  profile {{BLOB}} NOT NULL,
  labels_time BIGINT NOT NULL,
  updated_time BIGINT NOT NULL,
  PRIMARY KEY (model, version, bucket_ms, start_time)
);
CREATE INDEX window_profiles_by_time ON window_profiles (start_time);
