-- Leases (keel/store/lease.h): one holder at a time per named role across
-- every process on the store (the server's monitoring passes, the
-- retraining scheduler), renewed while held and taken over once expired.
CREATE TABLE leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires BIGINT NOT NULL,
  acquired BIGINT NOT NULL
) {{WITHOUT_ROWID}};
