-- Up Migration

-- One-time console sign-in links (`countersign login --web`): the CLI, holding a person's API key, asks for a
-- link; the browser that opens it gets a console session for that same principal. Only the token's SHA-256 is
-- stored, so a copy of this table signs nobody in. A link is bound to its tenant, principal and the key that
-- minted it (named by its public prefix: its revocation or expiry kills the link), lives minutes, and is spent
-- by the first redemption (used_at), whatever its outcome.
CREATE TABLE console_links (
  id_hash       text PRIMARY KEY CHECK (id_hash ~ '^[0-9a-f]{64}$'),
  tenant_id     text NOT NULL,
  principal_id  text NOT NULL,
  key_prefix    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  used_at       timestamptz,
  FOREIGN KEY (principal_id, tenant_id) REFERENCES principals (id, tenant_id)
);
CREATE INDEX console_links_principal ON console_links (tenant_id, principal_id);

ALTER TABLE console_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE console_links FORCE ROW LEVEL SECURITY;
CREATE POLICY console_links_tenant ON console_links
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

-- A tenant's audit replays run from the console (POST /v1/audit/replays): who ran one, when, and its report's
-- summary, so the Audit page shows the last result. The log itself stays the only source of truth: this is a
-- record of a check, never an input to one.
CREATE TABLE audit_replays (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id     text NOT NULL,
  principal_id  text NOT NULL,
  started_at    timestamptz NOT NULL,
  finished_at   timestamptz NOT NULL,
  ok            boolean NOT NULL,
  summary       jsonb NOT NULL,
  FOREIGN KEY (principal_id, tenant_id) REFERENCES principals (id, tenant_id)
);
CREATE INDEX audit_replays_tenant ON audit_replays (tenant_id, id DESC);

ALTER TABLE audit_replays ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_replays FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_replays_tenant ON audit_replays
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

-- Down Migration
DROP POLICY audit_replays_tenant ON audit_replays;
DROP TABLE audit_replays;
DROP POLICY console_links_tenant ON console_links;
DROP TABLE console_links;
