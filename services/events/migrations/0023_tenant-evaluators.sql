-- Up Migration

-- A tenant's evaluator for judgment rules: an OpenAI-compatible chat-completions endpoint. The API key is a
-- secret: written by the tenant's admins, read only by the worker's judgeRequest activity, never returned by
-- the API nor logged. Tenant isolation as in migration 0002.

CREATE TABLE tenant_evaluators (
  tenant_id   text PRIMARY KEY,
  url         text NOT NULL CHECK (length(url) <= 2000),
  model       text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
  api_key     text NOT NULL CHECK (length(api_key) BETWEEN 1 AND 4000),
  timeout_ms  integer NOT NULL CHECK (timeout_ms BETWEEN 100 AND 60000),
  updated_by  text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE tenant_evaluators ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_evaluators FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_evaluators_tenant ON tenant_evaluators
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

-- Down Migration
DROP POLICY tenant_evaluators_tenant ON tenant_evaluators;
DROP TABLE tenant_evaluators;
