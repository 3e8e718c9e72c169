-- Up Migration

-- Approval channels (issue 8): what Countersign sent to approvers on Slack and by email, and the answers it
-- has already seen. Tenant isolation as in migration 0002: row-level security, FORCEd, scope per transaction.
-- The email link's token is stored only as its SHA-256; the link itself exists only in the approver's mail.

CREATE TABLE channel_email_tokens (
  token_hash   text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  tenant_id    text NOT NULL,
  decision_id  text NOT NULL,
  round        integer NOT NULL CHECK (round >= 1),
  purpose      text NOT NULL CHECK (purpose IN ('request', 'escalation')),
  approver_id  text NOT NULL,
  email        text NOT NULL,
  expires_at   timestamptz NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  used_at      timestamptz,
  used_verdict text CHECK (used_verdict IN ('approve', 'reject')),
  FOREIGN KEY (approver_id, tenant_id) REFERENCES principals (id, tenant_id),
  -- One link per approver, round and notification: a retried notification never mints a second live link.
  UNIQUE (tenant_id, decision_id, round, purpose, approver_id)
);

CREATE TABLE channel_slack_messages (
  ref          text PRIMARY KEY CHECK (ref ~ '^[A-Za-z0-9_-]{16,64}$'),
  tenant_id    text NOT NULL,
  decision_id  text NOT NULL,
  round        integer NOT NULL CHECK (round >= 1),
  purpose      text NOT NULL CHECK (purpose IN ('request', 'escalation')),
  approver_id  text NOT NULL,
  slack_user_id text NOT NULL,
  team_id      text NOT NULL,
  channel      text,
  ts           text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (approver_id, tenant_id) REFERENCES principals (id, tenant_id),
  UNIQUE (tenant_id, decision_id, round, purpose, approver_id)
);

-- Every signed Slack interaction seen, by the digest of its raw body: a replayed payload is acknowledged and
-- does nothing. The tenant is the one of the message the click was on.
CREATE TABLE channel_slack_interactions (
  body_hash    text PRIMARY KEY CHECK (body_hash ~ '^[0-9a-f]{64}$'),
  tenant_id    text NOT NULL,
  ref          text NOT NULL REFERENCES channel_slack_messages (ref),
  slack_user_id text NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE channel_email_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE channel_email_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY channel_email_tokens_tenant ON channel_email_tokens
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

ALTER TABLE channel_slack_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE channel_slack_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY channel_slack_messages_tenant ON channel_slack_messages
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

ALTER TABLE channel_slack_interactions ENABLE ROW LEVEL SECURITY;
ALTER TABLE channel_slack_interactions FORCE ROW LEVEL SECURITY;
CREATE POLICY channel_slack_interactions_tenant ON channel_slack_interactions
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

-- Down Migration
DROP POLICY channel_slack_interactions_tenant ON channel_slack_interactions;
DROP POLICY channel_slack_messages_tenant ON channel_slack_messages;
DROP POLICY channel_email_tokens_tenant ON channel_email_tokens;
DROP TABLE channel_slack_interactions;
DROP TABLE channel_slack_messages;
DROP TABLE channel_email_tokens;
