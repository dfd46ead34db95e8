-- Every alias change: who, when, from which version to which, why.
-- from_version / to_version are NULL when the alias did not exist / was deleted.
CREATE TABLE alias_history (
  id BIGINT PRIMARY KEY,
  name TEXT NOT NULL,
  alias TEXT NOT NULL,
  from_version BIGINT,
  to_version BIGINT,
  actor TEXT NOT NULL,
  reason TEXT NOT NULL,
  time BIGINT NOT NULL
);
CREATE INDEX alias_history_by_alias ON alias_history (name, alias, id);
INSERT INTO sequences (name, value) VALUES ('alias_history_id', 0);
