-- Up Migration

-- Rate and cost limits: one row per (decision, counter) that went ahead. The API sums a window before it
-- evaluates (the values are recorded as facts in PolicyEvaluated, so replay re-derives the decision);
-- the rows are written in the same transaction as the DecisionFinalized that lets the action go ahead.
CREATE TABLE counter_entries (
  tenant_id   text             NOT NULL,
  key         text             NOT NULL,
  decision_id text             NOT NULL,
  at          timestamptz      NOT NULL,
  amount      double precision NOT NULL,
  PRIMARY KEY (decision_id, key)
);
CREATE INDEX counter_entries_window ON counter_entries (tenant_id, key, at);

ALTER TABLE counter_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE counter_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY counter_entries_tenant ON counter_entries
  USING (tenant_id = countersign_tenant() OR countersign_system())
  WITH CHECK (tenant_id = countersign_tenant() OR countersign_system());

-- Down Migration
DROP TABLE counter_entries;
