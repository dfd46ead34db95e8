-- Request outcomes per model version and minute (keel/serve/request_counts.h):
-- every replica adds its counts; minute is the minute's start in Unix ms.
CREATE TABLE request_counts (
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  minute BIGINT NOT NULL,
  requests BIGINT NOT NULL,
  client_errors BIGINT NOT NULL,
  server_errors BIGINT NOT NULL,
  PRIMARY KEY (model, version, minute)
) {{WITHOUT_ROWID}};
CREATE INDEX request_counts_by_model_minute ON request_counts (model, minute);
