-- Up Migration

-- The record: one append-only, hash-chained log. Only the schema owner (which runs migrations) owns it;
-- the application role may read and insert, nothing else, and triggers refuse changes even from the owner.
CREATE TABLE events (
  position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  stream_id      text        NOT NULL CHECK (length(stream_id) BETWEEN 1 AND 300),
  stream_version integer     NOT NULL CHECK (stream_version > 0),
  event_id       text        NOT NULL CHECK (length(event_id) BETWEEN 1 AND 300),
  type           text        NOT NULL,
  schema_version integer     NOT NULL CHECK (schema_version > 0),
  tenant_id      text        NOT NULL,
  data           jsonb       NOT NULL,
  metadata       jsonb       NOT NULL DEFAULT '{}'::jsonb,
  recorded_at    timestamptz NOT NULL,
  prev_hash      text,
  hash           text        NOT NULL,
  -- The writing transaction's id: the publisher only reads rows whose transaction is older than every
  -- transaction still in flight, so a late commit with a lower position is never skipped.
  tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
  CONSTRAINT events_event_id_unique UNIQUE (event_id),
  CONSTRAINT events_stream_version_unique UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_tx_position ON events (tx_id, position);
CREATE INDEX events_tenant_type ON events (tenant_id, type, position);

CREATE FUNCTION countersign_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the event log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION countersign_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION countersign_refuse_change();

-- Policy changes wake the API's snapshot cache at once (LISTEN policy_changed).
CREATE FUNCTION countersign_notify_policy_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('policy_changed', NEW.tenant_id);
  RETURN NULL;
END $$;
CREATE TRIGGER events_policy_notify AFTER INSERT ON events
  FOR EACH ROW WHEN (NEW.stream_id LIKE 'policy-%' OR NEW.stream_id LIKE 'agent-%')
  EXECUTE FUNCTION countersign_notify_policy_change();

-- Idempotency that outlives Temporal's retention: written in the same transaction as a run's first events.
CREATE TABLE idempotency_keys (
  tenant_id       text        NOT NULL,
  idempotency_key text        NOT NULL,
  decision_id     text        NOT NULL UNIQUE,
  request_digest  text        NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, idempotency_key)
);

-- Where each publisher has got to, as (tx_id, position): see events.tx_id.
CREATE TABLE publisher_checkpoints (
  name       text        PRIMARY KEY,
  tx_id      xid8        NOT NULL,
  position   bigint      NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Identity: tenants, principals (people and agents), API keys stored only as hashes.
CREATE TABLE tenants (
  id               text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  name             text        NOT NULL,
  default_decision text        NOT NULL DEFAULT 'DENY',
  settings         jsonb       NOT NULL DEFAULT '{}'::jsonb,
  created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE principals (
  id            text        PRIMARY KEY,
  tenant_id     text        NOT NULL REFERENCES tenants(id),
  name          text        NOT NULL,
  kind          text        NOT NULL CHECK (kind IN ('person', 'agent')),
  roles         text[]      NOT NULL DEFAULT '{}',
  groups        text[]      NOT NULL DEFAULT '{}',
  email         text,
  slack_user_id text,
  platform_admin boolean    NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX principals_tenant ON principals (tenant_id);

CREATE TABLE api_keys (
  id           text        PRIMARY KEY,
  prefix       text        NOT NULL UNIQUE,
  secret_hash  text        NOT NULL,
  principal_id text        NOT NULL REFERENCES principals(id),
  tenant_id    text        NOT NULL REFERENCES tenants(id),
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,
  revoked_at   timestamptz
);

-- Down Migration
DROP TABLE api_keys;
DROP TABLE principals;
DROP TABLE tenants;
DROP TABLE publisher_checkpoints;
DROP TABLE idempotency_keys;
DROP TABLE events;
DROP FUNCTION countersign_notify_policy_change();
DROP FUNCTION countersign_refuse_change();
