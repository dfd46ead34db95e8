-- Monitoring: alerts (keel/monitor/alerts.h) and the summaries of monitored
-- windows (keel/monitor/live.h). Portable SQL; times are Unix milliseconds.

-- One row per alert; later firings of the same model, version and rule within
-- the rule's cooldown update last_time, fire_count and value instead of adding
-- rows. details is the alert as JSON.
CREATE TABLE alerts (
  alert_id {{AUTO_ID}},
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  rule TEXT NOT NULL,
  severity TEXT NOT NULL,
  metric TEXT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  threshold DOUBLE PRECISION NOT NULL,
  first_time BIGINT NOT NULL,
  last_time BIGINT NOT NULL,
  fire_count BIGINT NOT NULL,
  details TEXT NOT NULL
);
CREATE INDEX alerts_by_rule ON alerts (model, version, rule, last_time);
CREATE INDEX alerts_by_time ON alerts (last_time);

-- One row per monitored window (the server's monitor loop): the window's
-- report as JSON (drift, performance, operational figures), for history.
CREATE TABLE monitor_windows (
  window_id {{AUTO_ID}},
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  from_time BIGINT NOT NULL,
  to_time BIGINT NOT NULL,
  computed_time BIGINT NOT NULL,
  report TEXT NOT NULL
);
CREATE INDEX monitor_windows_by_model ON monitor_windows (model, version, to_time);
