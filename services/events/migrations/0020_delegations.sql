-- Up Migration

-- Delegations: an approver who is away names another member of the same approver group to answer for them for
-- a period. Each grant and revocation is also an event on the tenant's stream (DelegationGranted,
-- DelegationRevoked), appended in the same transaction; this table is what the worker reads when an answer
-- arrives. Tenant isolation as in migration 0002.

CREATE TABLE delegations (
  id            text PRIMARY KEY,
  tenant_id     text NOT NULL,
  from_id       text NOT NULL,
  to_id         text NOT NULL CHECK (to_id <> from_id),
  group_name    text NOT NULL,
  starts_at     timestamptz NOT NULL,
  ends_at       timestamptz NOT NULL CHECK (ends_at > starts_at),
  created_by    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  revoked_at    timestamptz,
  revoked_by    text,
  FOREIGN KEY (from_id, tenant_id) REFERENCES principals (id, tenant_id),
  FOREIGN KEY (to_id, tenant_id) REFERENCES principals (id, tenant_id)
);
CREATE INDEX delegations_to ON delegations (tenant_id, to_id, ends_at) WHERE revoked_at IS NULL;
CREATE INDEX delegations_from ON delegations (tenant_id, from_id, ends_at) WHERE revoked_at IS NULL;

ALTER TABLE delegations ENABLE ROW LEVEL SECURITY;
ALTER TABLE delegations FORCE ROW LEVEL SECURITY;
CREATE POLICY delegations_tenant ON delegations
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

-- Down Migration
DROP POLICY delegations_tenant ON delegations;
DROP TABLE delegations;
