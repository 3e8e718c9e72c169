-- Up Migration

-- The tool catalog (issue 3). The record is the tenant's event stream `catalog-<tenant>`
-- (ToolCatalogRegistered / ToolCatalogRemoved); these tables are its projection, written in the same
-- transaction as each event, so the decision path reads one tenant's current catalog in one query instead
-- of folding every registration ever made. Replay never reads them: it folds the events.
CREATE TABLE tool_catalog_sources (
  tenant_id       text        NOT NULL,
  source_id       text        NOT NULL CHECK (source_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
  format          text        NOT NULL CHECK (format IN ('openapi', 'mcp')),
  tool            text,
  document_digest text        NOT NULL CHECK (document_digest ~ '^sha256:[0-9a-f]{64}$'),
  entries         jsonb       NOT NULL,
  entry_count     integer     NOT NULL CHECK (entry_count BETWEEN 1 AND 1000),
  registered_by   text        NOT NULL,
  registered_at   timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, source_id)
);

-- The catalog version (the stream's version) and hash a decision records.
CREATE TABLE tool_catalog_heads (
  tenant_id text    PRIMARY KEY,
  version   integer NOT NULL CHECK (version > 0),
  hash      text    NOT NULL CHECK (hash ~ '^sha256:[0-9a-f]{64}$')
);

ALTER TABLE tool_catalog_sources ENABLE ROW LEVEL SECURITY;
ALTER TABLE tool_catalog_sources FORCE ROW LEVEL SECURITY;
CREATE POLICY tool_catalog_sources_tenant ON tool_catalog_sources
  USING (tenant_id = countersign_tenant() OR countersign_system())
  WITH CHECK (tenant_id = countersign_tenant() OR countersign_system());
ALTER TABLE tool_catalog_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE tool_catalog_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tool_catalog_heads_tenant ON tool_catalog_heads
  USING (tenant_id = countersign_tenant() OR countersign_system())
  WITH CHECK (tenant_id = countersign_tenant() OR countersign_system());

-- A catalog change wakes every API's catalog cache at once (LISTEN tool_catalog_changed), when it commits.
CREATE FUNCTION countersign_notify_tool_catalog_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('tool_catalog_changed', NEW.tenant_id);
  RETURN NULL;
END $$;
CREATE TRIGGER events_tool_catalog_notify AFTER INSERT ON events
  FOR EACH ROW WHEN (NEW.stream_id LIKE 'catalog-%')
  EXECUTE FUNCTION countersign_notify_tool_catalog_change();

-- Down Migration
DROP TRIGGER events_tool_catalog_notify ON events;
DROP FUNCTION countersign_notify_tool_catalog_change();
DROP TABLE tool_catalog_heads;
DROP TABLE tool_catalog_sources;
