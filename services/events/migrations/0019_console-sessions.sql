-- Up Migration

-- Console sessions: a signed-in browser holds a random session id in an HttpOnly cookie; only its SHA-256 is
-- stored, so a copy of this table signs nobody in. The API key that opened the session is named by its public
-- prefix only (its revocation or expiry ends the session). Tenant isolation as in migration 0002.

CREATE TABLE console_sessions (
  id_hash       text PRIMARY KEY CHECK (id_hash ~ '^[0-9a-f]{64}$'),
  tenant_id     text NOT NULL,
  principal_id  text NOT NULL,
  key_prefix    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  ended_at      timestamptz,
  FOREIGN KEY (principal_id, tenant_id) REFERENCES principals (id, tenant_id)
);
CREATE INDEX console_sessions_principal ON console_sessions (tenant_id, principal_id);

ALTER TABLE console_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE console_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY console_sessions_tenant ON console_sessions
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

-- Down Migration
DROP POLICY console_sessions_tenant ON console_sessions;
DROP TABLE console_sessions;
