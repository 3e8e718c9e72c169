-- Up Migration

-- An agent is who its key says. Each principal that asks for decisions has an agent id (the id policies,
-- bindings and counters use); its key decides as that agent only, unless an admin let it act for others
-- (`acts_for`: agent ids, or prefixes ending in `*`, for a gateway or an orchestrator).
ALTER TABLE principals ADD COLUMN agent_id text CHECK (agent_id ~ '^[A-Za-z0-9._:@-]{1,200}$');
ALTER TABLE principals ADD COLUMN acts_for text[] NOT NULL DEFAULT '{}';

-- Existing agents get their name (made a valid agent id) where it is free, else their principal id.
-- Row-level security applies to the owner too (FORCE): this backfill is a named crossing of tenants.
SELECT set_config('countersign.system', 'migration', true);
WITH named AS (
  SELECT id, tenant_id,
         nullif(btrim(regexp_replace(name, '[^A-Za-z0-9._:@-]+', '-', 'g'), '-'), '') AS slug
    FROM principals WHERE kind = 'agent'
), ranked AS (
  SELECT id, slug, row_number() OVER (PARTITION BY tenant_id, slug ORDER BY id) AS n FROM named
)
UPDATE principals p SET agent_id = CASE WHEN r.slug IS NOT NULL AND r.n = 1 AND length(r.slug) <= 200 THEN r.slug ELSE p.id END
  FROM ranked r WHERE r.id = p.id;
SELECT set_config('countersign.system', '', true);
CREATE UNIQUE INDEX principals_tenant_agent ON principals (tenant_id, agent_id) WHERE agent_id IS NOT NULL;

-- Idempotency keys belong to the principal that used them: the decision id is derived from (tenant,
-- principal, key) (services/decisions/decision-id.ts), so two principals' equal keys are two rows, and one
-- principal can neither read nor block another's decision through a key.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (tenant_id, decision_id);

-- Down Migration
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (tenant_id, idempotency_key);
DROP INDEX principals_tenant_agent;
ALTER TABLE principals DROP COLUMN acts_for;
ALTER TABLE principals DROP COLUMN agent_id;
