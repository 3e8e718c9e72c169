-- Up Migration

-- Approval channels, part two (issue 8): reminders and digests, a per-approver notification cap, a durable
-- inbox for Slack clicks, a log of every answer a channel refused or counted, and the Slack workspace each
-- tenant is bound to. Tenant isolation as in migrations 0002 and 0007: row-level security, FORCEd.

-- Reminders and digests get their own links and messages (one per approver, round and purpose, as before).
ALTER TABLE channel_email_tokens DROP CONSTRAINT channel_email_tokens_purpose_check;
ALTER TABLE channel_email_tokens ADD CONSTRAINT channel_email_tokens_purpose_check CHECK (purpose IN ('request', 'escalation', 'reminder', 'digest'));
ALTER TABLE channel_slack_messages DROP CONSTRAINT channel_slack_messages_purpose_check;
ALTER TABLE channel_slack_messages ADD CONSTRAINT channel_slack_messages_purpose_check CHECK (purpose IN ('request', 'escalation', 'reminder', 'digest'));
-- A reminder is sent once per escalation level of a round: the level joins the key of links and messages.
ALTER TABLE channel_email_tokens ADD COLUMN level integer NOT NULL DEFAULT 0 CHECK (level >= 0);
ALTER TABLE channel_slack_messages ADD COLUMN level integer NOT NULL DEFAULT 0 CHECK (level >= 0);
DO $$
DECLARE n text;
BEGIN
  SELECT conname INTO n FROM pg_constraint WHERE conrelid = 'channel_email_tokens'::regclass AND contype = 'u';
  EXECUTE format('ALTER TABLE channel_email_tokens DROP CONSTRAINT %I', n);
  SELECT conname INTO n FROM pg_constraint WHERE conrelid = 'channel_slack_messages'::regclass AND contype = 'u';
  EXECUTE format('ALTER TABLE channel_slack_messages DROP CONSTRAINT %I', n);
END $$;
ALTER TABLE channel_email_tokens ADD CONSTRAINT channel_email_tokens_one_per_notice UNIQUE (tenant_id, decision_id, round, purpose, approver_id, level);
ALTER TABLE channel_slack_messages ADD CONSTRAINT channel_slack_messages_one_per_notice UNIQUE (tenant_id, decision_id, round, purpose, approver_id, level);

-- When the mail carrying the link was accepted by the SMTP server. A row without it was never (knowingly)
-- delivered: a retried notification replaces its token instead of assuming the mail went out.
ALTER TABLE channel_email_tokens ADD COLUMN sent_at timestamptz;
UPDATE channel_email_tokens SET sent_at = created_at;

-- The Slack inbox: a verified click is stored here before Slack gets its acknowledgement, and processed
-- after; an API that dies in between finds it unprocessed at its next start. `attempt_at` is a lease so two
-- API processes never work on the same click at once.
ALTER TABLE channel_slack_interactions ADD COLUMN team_id text;
ALTER TABLE channel_slack_interactions ADD COLUMN verdict text CHECK (verdict IN ('approve', 'reject'));
-- The reason a Reject gives (from the modal the Reject button opens).
ALTER TABLE channel_slack_interactions ADD COLUMN comment text CHECK (length(comment) <= 2000);
ALTER TABLE channel_slack_interactions ADD COLUMN attempt_at timestamptz;
ALTER TABLE channel_slack_interactions ADD COLUMN processed_at timestamptz;
ALTER TABLE channel_slack_interactions ADD COLUMN outcome text;
UPDATE channel_slack_interactions SET processed_at = received_at, outcome = 'processed before migration 0009';
CREATE INDEX channel_slack_interactions_unprocessed ON channel_slack_interactions (received_at) WHERE processed_at IS NULL;

-- Every answer that reached a channel, counted or refused, with the reason. tenant_id is NULL when the
-- request could not be tied to a tenant (a forged Slack signature, an unknown link): only system scopes see those.
CREATE TABLE channel_answer_log (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id    text,
  channel      text NOT NULL CHECK (channel IN ('slack', 'email')),
  decision_id  text,
  round        integer,
  actor        text,
  verdict      text,
  counted      boolean NOT NULL,
  reason       text NOT NULL,
  at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channel_answer_log_decision ON channel_answer_log (tenant_id, decision_id);

-- Notifications sent to each approver on each channel, for the per-approver cap. A send that failed is
-- marked, not deleted (the application role cannot delete), and does not count.
CREATE TABLE channel_notification_sends (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id    text NOT NULL,
  approver_id  text NOT NULL,
  channel      text NOT NULL CHECK (channel IN ('slack', 'email')),
  decision_id  text,
  round        integer,
  purpose      text NOT NULL CHECK (purpose IN ('request', 'escalation', 'reminder', 'digest')),
  at           timestamptz NOT NULL DEFAULT now(),
  failed_at    timestamptz,
  FOREIGN KEY (approver_id, tenant_id) REFERENCES principals (id, tenant_id)
);
CREATE INDEX channel_notification_sends_window ON channel_notification_sends (tenant_id, approver_id, channel, at);

-- Notifications over the cap wait here and go out together as one digest when the approver's window allows.
CREATE TABLE channel_digest_items (
  tenant_id    text NOT NULL,
  approver_id  text NOT NULL,
  channel      text NOT NULL CHECK (channel IN ('slack', 'email')),
  decision_id  text NOT NULL,
  round        integer NOT NULL CHECK (round >= 1),
  purpose      text NOT NULL CHECK (purpose IN ('request', 'escalation', 'reminder')),
  queued_at    timestamptz NOT NULL DEFAULT now(),
  digested_at  timestamptz,
  PRIMARY KEY (tenant_id, approver_id, channel, decision_id, round, purpose),
  FOREIGN KEY (approver_id, tenant_id) REFERENCES principals (id, tenant_id)
);
CREATE INDEX channel_digest_items_pending ON channel_digest_items (queued_at) WHERE digested_at IS NULL;

-- The Slack workspace (team id) a tenant's approvers answer from. A team belongs to at most one tenant;
-- clicks on a tenant's messages from any other team are refused, and nothing is posted for a tenant whose
-- binding differs from the bot's workspace. No secret is stored here.
CREATE TABLE channel_slack_workspaces (
  tenant_id    text PRIMARY KEY REFERENCES tenants (id),
  team_id      text NOT NULL UNIQUE CHECK (team_id ~ '^[A-Z0-9]{2,32}$'),
  bound_by     text NOT NULL,
  bound_at     timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE channel_answer_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE channel_answer_log FORCE ROW LEVEL SECURITY;
CREATE POLICY channel_answer_log_tenant ON channel_answer_log
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

ALTER TABLE channel_notification_sends ENABLE ROW LEVEL SECURITY;
ALTER TABLE channel_notification_sends FORCE ROW LEVEL SECURITY;
CREATE POLICY channel_notification_sends_tenant ON channel_notification_sends
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

ALTER TABLE channel_digest_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE channel_digest_items FORCE ROW LEVEL SECURITY;
CREATE POLICY channel_digest_items_tenant ON channel_digest_items
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

ALTER TABLE channel_slack_workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE channel_slack_workspaces FORCE ROW LEVEL SECURITY;
CREATE POLICY channel_slack_workspaces_tenant ON channel_slack_workspaces
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

-- Down Migration
DROP TABLE channel_slack_workspaces;
DROP TABLE channel_digest_items;
DROP TABLE channel_notification_sends;
DROP TABLE channel_answer_log;
DROP INDEX channel_slack_interactions_unprocessed;
ALTER TABLE channel_slack_interactions DROP COLUMN outcome, DROP COLUMN processed_at, DROP COLUMN attempt_at, DROP COLUMN comment, DROP COLUMN verdict, DROP COLUMN team_id;
ALTER TABLE channel_email_tokens DROP COLUMN sent_at;
ALTER TABLE channel_email_tokens DROP CONSTRAINT channel_email_tokens_one_per_notice;
ALTER TABLE channel_slack_messages DROP CONSTRAINT channel_slack_messages_one_per_notice;
ALTER TABLE channel_email_tokens DROP COLUMN level;
ALTER TABLE channel_slack_messages DROP COLUMN level;
ALTER TABLE channel_email_tokens ADD UNIQUE (tenant_id, decision_id, round, purpose, approver_id);
ALTER TABLE channel_slack_messages ADD UNIQUE (tenant_id, decision_id, round, purpose, approver_id);
ALTER TABLE channel_slack_messages DROP CONSTRAINT channel_slack_messages_purpose_check;
ALTER TABLE channel_slack_messages ADD CONSTRAINT channel_slack_messages_purpose_check CHECK (purpose IN ('request', 'escalation'));
ALTER TABLE channel_email_tokens DROP CONSTRAINT channel_email_tokens_purpose_check;
ALTER TABLE channel_email_tokens ADD CONSTRAINT channel_email_tokens_purpose_check CHECK (purpose IN ('request', 'escalation'));
