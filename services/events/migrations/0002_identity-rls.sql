-- Up Migration

-- Tenant isolation enforced by the database itself (row-level security), as a second wall behind the
-- application's own `WHERE tenant_id = …`: a query that forgets its tenant returns nothing instead of
-- another tenant's rows.
--
-- The scope is set per TRANSACTION, never per session, so a pooled connection cannot carry one request's
-- tenant into the next (services/events/db.ts):
--   withTenant(db, t, fn)      SELECT set_config('countersign.tenant_id', t, true)   -- SET LOCAL
--   withSystem(db, why, fn)    SELECT set_config('countersign.system', why, true)    -- SET LOCAL
-- "System" is the explicit, named scope of the few paths that legitimately cross tenants: key lookup at
-- authentication, the publisher, the auditor's replay, platform administration. Without either setting a
-- query sees no rows and may write none. This guards against mistakes in our own queries; it is not a
-- privilege boundary against someone who can run arbitrary SQL as the application role (custom settings
-- are settable by any role), which parameterised queries keep out.
--
-- FORCE applies the policies to the table owner too, so operator tools and migrations that read these
-- tables must choose a scope like everyone else.

CREATE FUNCTION countersign_tenant() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT nullif(current_setting('countersign.tenant_id', true), '')
$$;
CREATE FUNCTION countersign_system() RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT coalesce(current_setting('countersign.system', true), '') <> ''
$$;

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY events_tenant ON events
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());
-- Platform-scope policies apply to every tenant, so every tenant may read them (never write them).
CREATE POLICY events_platform_policies ON events FOR SELECT
  USING (tenant_id = 'platform' AND countersign_tenant() IS NOT NULL);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_tenant ON idempotency_keys
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_tenant ON tenants
  USING (countersign_system() OR id = countersign_tenant())
  WITH CHECK (countersign_system() OR id = countersign_tenant());

ALTER TABLE principals ENABLE ROW LEVEL SECURITY;
ALTER TABLE principals FORCE ROW LEVEL SECURITY;
CREATE POLICY principals_tenant ON principals
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_tenant ON api_keys
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

-- Members are disabled, never deleted: events name them (requested_by, approvals) forever.
ALTER TABLE principals ADD COLUMN disabled_at timestamptz;
-- People are found by their Slack user id or email address (channels), so each maps to one person per tenant.
CREATE UNIQUE INDEX principals_tenant_email ON principals (tenant_id, lower(email)) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX principals_tenant_slack ON principals (tenant_id, slack_user_id) WHERE slack_user_id IS NOT NULL;
CREATE INDEX principals_tenant_created ON principals (tenant_id, created_at, id);
ALTER TABLE api_keys ADD COLUMN name text NOT NULL DEFAULT '' CHECK (length(name) <= 200);
CREATE INDEX api_keys_tenant_created ON api_keys (tenant_id, created_at, id);
CREATE INDEX api_keys_principal ON api_keys (principal_id);
-- A key's tenant is its principal's tenant, always.
ALTER TABLE principals ADD CONSTRAINT principals_id_tenant UNIQUE (id, tenant_id);
ALTER TABLE api_keys ADD CONSTRAINT api_keys_principal_tenant FOREIGN KEY (principal_id, tenant_id) REFERENCES principals (id, tenant_id);
-- Listing a tenant's decisions reads its DecisionRequested rows newest first.
CREATE INDEX events_tenant_type_desc ON events (tenant_id, type, position DESC);

-- A tenant's default decision is part of its effective policy set: wake the API's snapshot cache.
CREATE FUNCTION countersign_notify_tenant_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('policy_changed', NEW.id);
  RETURN NULL;
END $$;
CREATE TRIGGER tenants_notify AFTER UPDATE ON tenants
  FOR EACH ROW EXECUTE FUNCTION countersign_notify_tenant_change();

-- Down Migration
DROP TRIGGER tenants_notify ON tenants;
DROP FUNCTION countersign_notify_tenant_change();
DROP INDEX events_tenant_type_desc;
ALTER TABLE api_keys DROP CONSTRAINT api_keys_principal_tenant;
ALTER TABLE principals DROP CONSTRAINT principals_id_tenant;
DROP INDEX api_keys_principal;
DROP INDEX api_keys_tenant_created;
ALTER TABLE api_keys DROP COLUMN name;
DROP INDEX principals_tenant_created;
DROP INDEX principals_tenant_slack;
DROP INDEX principals_tenant_email;
ALTER TABLE principals DROP COLUMN disabled_at;
DROP POLICY api_keys_tenant ON api_keys;
ALTER TABLE api_keys NO FORCE ROW LEVEL SECURITY;
ALTER TABLE api_keys DISABLE ROW LEVEL SECURITY;
DROP POLICY principals_tenant ON principals;
ALTER TABLE principals NO FORCE ROW LEVEL SECURITY;
ALTER TABLE principals DISABLE ROW LEVEL SECURITY;
DROP POLICY tenants_tenant ON tenants;
ALTER TABLE tenants NO FORCE ROW LEVEL SECURITY;
ALTER TABLE tenants DISABLE ROW LEVEL SECURITY;
DROP POLICY idempotency_keys_tenant ON idempotency_keys;
ALTER TABLE idempotency_keys NO FORCE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys DISABLE ROW LEVEL SECURITY;
DROP POLICY events_platform_policies ON events;
DROP POLICY events_tenant ON events;
ALTER TABLE events NO FORCE ROW LEVEL SECURITY;
ALTER TABLE events DISABLE ROW LEVEL SECURITY;
DROP FUNCTION countersign_system();
DROP FUNCTION countersign_tenant();
