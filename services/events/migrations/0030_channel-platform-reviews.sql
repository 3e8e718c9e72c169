-- Up Migration

-- Reviews of platform policies are notified on Slack and by email like a tenant's reviews. Their reviewers are
-- platform admins, who live in their own (home) tenants: each message or link is a row of the reviewer's home
-- tenant (row-level security as before: migrations 0007 and 0009), with purpose 'platform_review' and the
-- platform policy's id, so an answer reaches the platform's review through the API's own path.
ALTER TABLE channel_email_tokens DROP CONSTRAINT channel_email_tokens_purpose_check;
ALTER TABLE channel_email_tokens ADD CONSTRAINT channel_email_tokens_purpose_check CHECK (purpose IN ('request', 'escalation', 'reminder', 'digest', 'review', 'platform_review'));
ALTER TABLE channel_slack_messages DROP CONSTRAINT channel_slack_messages_purpose_check;
ALTER TABLE channel_slack_messages ADD CONSTRAINT channel_slack_messages_purpose_check CHECK (purpose IN ('request', 'escalation', 'reminder', 'digest', 'review', 'platform_review'));
ALTER TABLE channel_email_tokens DROP CONSTRAINT channel_email_tokens_review_policy;
ALTER TABLE channel_email_tokens ADD CONSTRAINT channel_email_tokens_review_policy CHECK ((purpose IN ('review', 'platform_review')) = (policy_id IS NOT NULL));
ALTER TABLE channel_slack_messages DROP CONSTRAINT channel_slack_messages_review_policy;
ALTER TABLE channel_slack_messages ADD CONSTRAINT channel_slack_messages_review_policy CHECK ((purpose IN ('review', 'platform_review')) = (policy_id IS NOT NULL));

-- Down Migration
DELETE FROM channel_email_tokens WHERE purpose = 'platform_review';
DELETE FROM channel_slack_messages WHERE purpose = 'platform_review';
ALTER TABLE channel_slack_messages DROP CONSTRAINT channel_slack_messages_review_policy;
ALTER TABLE channel_slack_messages ADD CONSTRAINT channel_slack_messages_review_policy CHECK ((purpose = 'review') = (policy_id IS NOT NULL));
ALTER TABLE channel_email_tokens DROP CONSTRAINT channel_email_tokens_review_policy;
ALTER TABLE channel_email_tokens ADD CONSTRAINT channel_email_tokens_review_policy CHECK ((purpose = 'review') = (policy_id IS NOT NULL));
ALTER TABLE channel_slack_messages DROP CONSTRAINT channel_slack_messages_purpose_check;
ALTER TABLE channel_slack_messages ADD CONSTRAINT channel_slack_messages_purpose_check CHECK (purpose IN ('request', 'escalation', 'reminder', 'digest', 'review'));
ALTER TABLE channel_email_tokens DROP CONSTRAINT channel_email_tokens_purpose_check;
ALTER TABLE channel_email_tokens ADD CONSTRAINT channel_email_tokens_purpose_check CHECK (purpose IN ('request', 'escalation', 'reminder', 'digest', 'review'));
