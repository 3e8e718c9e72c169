-- Up Migration

-- Approval channels, part three: four-eyes policy reviews are notified on Slack and by email like any
-- approval round, and a Slack approval may carry edited arguments (from the "Approve with edit" modal).
-- Tenant isolation is unchanged (migrations 0007 and 0009: row-level security, FORCEd).

-- A review's message or link: `decision_id` holds the review id, `round` is 1, `purpose` is 'review', and the
-- policy under review is named so an answer reaches the review through the API's own path.
ALTER TABLE channel_email_tokens DROP CONSTRAINT channel_email_tokens_purpose_check;
ALTER TABLE channel_email_tokens ADD CONSTRAINT channel_email_tokens_purpose_check CHECK (purpose IN ('request', 'escalation', 'reminder', 'digest', 'review'));
ALTER TABLE channel_slack_messages DROP CONSTRAINT channel_slack_messages_purpose_check;
ALTER TABLE channel_slack_messages ADD CONSTRAINT channel_slack_messages_purpose_check CHECK (purpose IN ('request', 'escalation', 'reminder', 'digest', 'review'));
ALTER TABLE channel_email_tokens ADD COLUMN policy_id text;
ALTER TABLE channel_slack_messages ADD COLUMN policy_id text;
ALTER TABLE channel_email_tokens ADD CONSTRAINT channel_email_tokens_review_policy CHECK ((purpose = 'review') = (policy_id IS NOT NULL));
ALTER TABLE channel_slack_messages ADD CONSTRAINT channel_slack_messages_review_policy CHECK ((purpose = 'review') = (policy_id IS NOT NULL));

-- The edited arguments of a stored "Approve with edit" submission (the inbox keeps them until it is counted).
ALTER TABLE channel_slack_interactions ADD COLUMN edited_args jsonb CHECK (edited_args IS NULL OR (jsonb_typeof(edited_args) = 'object' AND length(edited_args::text) <= 65536));

-- Down Migration
ALTER TABLE channel_slack_interactions DROP COLUMN edited_args;
ALTER TABLE channel_slack_messages DROP CONSTRAINT channel_slack_messages_review_policy;
ALTER TABLE channel_email_tokens DROP CONSTRAINT channel_email_tokens_review_policy;
ALTER TABLE channel_slack_messages DROP COLUMN policy_id;
ALTER TABLE channel_email_tokens DROP COLUMN policy_id;
ALTER TABLE channel_slack_messages DROP CONSTRAINT channel_slack_messages_purpose_check;
ALTER TABLE channel_slack_messages ADD CONSTRAINT channel_slack_messages_purpose_check CHECK (purpose IN ('request', 'escalation', 'reminder', 'digest'));
ALTER TABLE channel_email_tokens DROP CONSTRAINT channel_email_tokens_purpose_check;
ALTER TABLE channel_email_tokens ADD CONSTRAINT channel_email_tokens_purpose_check CHECK (purpose IN ('request', 'escalation', 'reminder', 'digest'));
