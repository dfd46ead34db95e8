-- Labels by the time they were recorded: monitoring finds the stretches of the
-- prediction log whose labels changed since its last pass
-- (keel/monitor/alerts.h, MonitorService) without scanning every label.
CREATE INDEX labels_by_time ON labels (time);
