import { z } from 'zod';
import { Decision } from './decision-kind.ts';
import { AgentId } from './decision.ts';
import { recordedSettingDuration, settingDuration } from './duration.ts';

/**
 * Tenants, principals (people and agents) and API keys as the HTTP API and the SDK see them. Keys appear in
 * full exactly once, in the answer that created them; every later view shows the public prefix only.
 */

export const ROLES = ['agent', 'approver', 'author', 'admin', 'auditor'] as const;
export const Role = z.enum(ROLES).describe('agent: ask for decisions, report outcomes, request overrides of its own runs; approver: answer approvals of its groups; author: draft and validate policies; admin: activate, bind, manage keys and members; auditor: read everything of the tenant, replay.');
export type Role = z.infer<typeof Role>;

/** Names no tenant may take: they would read as the platform (whose policies have streams of their own). */
export const RESERVED_TENANT_IDS = ['platform', 'system'] as const;

export const TenantId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'tenant ids are 1-63 of a-z 0-9 _ - and start with a letter or digit')
  .refine((id) => !(RESERVED_TENANT_IDS as readonly string[]).includes(id), 'this tenant id is reserved')
  .describe('Tenant id, e.g. acme.');

const Name = z.string().trim().min(1).max(200);
export const GroupName = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'group names are 1-64 of letters, digits . _ -').describe('Approver group of this tenant, e.g. sre.');
export const Email = z.email().max(320).describe('Email address of a person (approvals by email).');
export const SlackUserId = z.string().regex(/^[UW][A-Z0-9]{2,20}$/, 'Slack user ids look like U012AB3CD').describe('Slack user id of a person (approvals in Slack).');
export const PrincipalIdParam = z.string().regex(/^prn_[A-Za-z0-9_]{1,80}$/, 'principal ids look like prn_<id>');
export const ApiKeyIdParam = z.string().regex(/^key_[0-9a-f]{16}$/, 'API key ids look like key_<16 hex>');
export const ActsForEntry = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9._:@-]*\*?$/, 'an agent id, or a prefix of agent ids ending in *')
  .describe('An agent id this principal may ask for, or a prefix ending in * (e.g. support-*; * alone: every agent of the tenant).');
export const ActsFor = z
  .array(ActsForEntry)
  .max(256)
  .refine((a) => new Set(a).size === a.length, 'acts_for entries must not repeat')
  .describe('Agent ids this principal may ask for decisions as, besides its own agent_id (a gateway or orchestrator acting for several agents). Set by admins; each use is recorded in DecisionRequested (acting_principal). Default: none.');
export const PrincipalAgentId = AgentId.describe("The agent id this principal decides as: the id that policies, bindings and per-agent counters use; unique in the tenant. Default for agents: the name, with each run of other characters made '-'. A decision request's agent.id may be left out (this id is used) or must equal it (or be in acts_for).");
export const Expiry = z.iso.datetime({ offset: true }).describe('When the key stops working (ISO-8601). Default: never.');

type DurationSetting = typeof settingDuration | typeof recordedSettingDuration;

const tenantSettings = (duration: DurationSetting) => z
  .strictObject({
    approval_timeout: duration('How long an approval waits when its rule names no timeout (each such level of a ladder too), for runs started after the change. Default 1h.').optional(),
    policy_four_eyes: z.boolean().optional().describe('Policy activation needs a second admin: it becomes an approval round; the author cannot approve it. Default false.'),
    policy_require_validation: z.boolean().optional().describe('Activation is refused unless the exact draft was validated against recent runs. Default false.'),
    policy_refuse_loosening: z.boolean().optional().describe('Activation is refused while the draft\'s validation shows loosening by rules the activation does not declare in expected_loosening (implies validation). Default false.'),
    policy_activation_timeout: duration('How long a four-eyes activation waits for the second admin. Default 72h.').optional(),
    override_groups: z.array(GroupName).min(1).max(20).optional().describe('Approver groups that decide override requests; a policy\'s override.groups wins. Default: COUNTERSIGN_OVERRIDE_GROUPS.'),
    override_timeout: duration('How long an override request waits for an answer; a policy\'s override.timeout wins. Default: COUNTERSIGN_OVERRIDE_TIMEOUT.').optional(),
    override_window: duration('How long after a DENY the agent may ask for an override; a policy\'s override.window wins. Default: COUNTERSIGN_OVERRIDE_WINDOW.').optional(),
  })
  .describe('Tenant-wide settings.');
export const TenantSettings = tenantSettings(settingDuration);
export type TenantSettings = z.infer<typeof TenantSettings>;
/** Tenant settings as stored and recorded (TenantCreated, TenantChanged, the tenants row): durations unbounded, so old records still parse. */
export const RecordedTenantSettings = tenantSettings(recordedSettingDuration);

/** The platform's own policy settings (PATCH /v1/platform/settings, platform admins): they gate platform policies only. */
const platformSettings = (duration: DurationSetting) => z
  .strictObject({
    policy_four_eyes: z.boolean().optional().describe('A platform policy change (activate, rollback, deprecate) needs a second platform admin, who wrote no part of it. Default false.'),
    policy_require_validation: z.boolean().optional().describe('Activation of a platform policy is refused unless the exact draft was validated against recent runs of every tenant. Default false.'),
    policy_refuse_loosening: z.boolean().optional().describe("Activation is refused while the draft's validation shows loosening by rules not declared in expected_loosening (implies validation). Default false."),
    policy_activation_timeout: duration('How long a four-eyes review of a platform policy waits. Default 72h.').optional(),
  })
  .describe('Platform-wide policy settings.');
export const PlatformSettings = platformSettings(settingDuration);
/** Platform settings as recorded (PlatformSettingsChanged): durations unbounded, so old events still parse. */
export const RecordedPlatformSettings = platformSettings(recordedSettingDuration);
export type PlatformSettings = z.infer<typeof PlatformSettings>;

export const CreateTenantBody = z.strictObject({
  id: TenantId,
  name: Name.describe('Display name.'),
  default_decision: Decision.default('DENY').describe('Decision when no rule matches. Default: DENY.'),
  settings: TenantSettings.default({}),
  admin: z
    .strictObject({ name: Name, email: Email.optional(), slack_user_id: SlackUserId.optional() })
    .optional()
    .describe('The first admin of the tenant (a person). Default: a person named "admin".'),
});
export type CreateTenantBody = z.infer<typeof CreateTenantBody>;

export const CreateTenantResponse = z.strictObject({
  id: z.string(),
  admin_principal_id: z.string(),
  admin_api_key: z.string().describe('Shown once; stored only as a hash.'),
});

export const CreatePlatformAdminBody = z.strictObject({
  tenant_id: TenantId.describe('The tenant the new platform admin belongs to (an existing one): its home, where its key and events live.'),
  name: Name.describe('Display name.'),
  email: Email.optional().describe('Where reviews of platform changes are emailed.'),
  slack_user_id: SlackUserId.optional().describe('Where reviews of platform changes are sent on Slack.'),
});
export type CreatePlatformAdminBody = z.infer<typeof CreatePlatformAdminBody>;

export const CreatePlatformAdminResponse = z.strictObject({
  principal_id: z.string(),
  tenant_id: z.string(),
  roles: z.array(Role),
  api_key: z.string().describe('Shown once; stored only as a hash.'),
});

export const PlatformAdmin = z.strictObject({
  principal_id: z.string(),
  tenant_id: z.string().describe('Its home tenant.'),
  name: z.string(),
  disabled: z.boolean().describe('A disabled member keeps the flag but cannot sign in.'),
  created_at: z.string(),
});
export type PlatformAdmin = z.infer<typeof PlatformAdmin>;

export const PlatformAdminParams = z.strictObject({ tenant_id: TenantId, principal_id: PrincipalIdParam });
export const RevokedPlatformAdmin = z.strictObject({ principal_id: z.string(), tenant_id: z.string(), platform_admin: z.literal(false) });

export const Tenant = z.strictObject({
  id: z.string(),
  name: z.string(),
  default_decision: Decision,
  settings: RecordedTenantSettings,
  created_at: z.string(),
});
export type Tenant = z.infer<typeof Tenant>;

export const UpdateTenantBody = z
  .strictObject({ name: Name.optional(), default_decision: Decision.optional(), settings: TenantSettings.optional() })
  .refine((b) => Object.keys(b).length > 0, 'nothing to change');
export type UpdateTenantBody = z.infer<typeof UpdateTenantBody>;

const Roles = z.array(Role).max(ROLES.length).refine((r) => new Set(r).size === r.length, 'roles must not repeat');
const Groups = z.array(GroupName).max(64).refine((g) => new Set(g).size === g.length, 'groups must not repeat');

export const CreatePrincipalBody = z
  .strictObject({
    name: Name,
    kind: z.enum(['person', 'agent']),
    roles: Roles.min(1),
    groups: Groups.default([]),
    email: Email.optional(),
    slack_user_id: SlackUserId.optional(),
    key_name: z.string().max(200).default('').describe('Label of the first API key.'),
    expires_at: Expiry.optional(),
    agent_id: PrincipalAgentId.optional(),
    acts_for: ActsFor.default([]),
  })
  .refine((b) => b.kind === 'person' || (b.email === undefined && b.slack_user_id === undefined), { message: 'only people have an email or Slack user id', path: ['kind'] });
export type CreatePrincipalBody = z.infer<typeof CreatePrincipalBody>;

export const CreatePrincipalResponse = z.strictObject({
  id: z.string(),
  api_key: z.string().describe('Shown once; stored only as a hash.'),
  key_id: z.string(),
  agent_id: z.string().nullable().describe('The agent id the key decides as (null: none of its own).'),
});

export const PrincipalView = z.strictObject({
  id: z.string(),
  tenant_id: z.string(),
  name: z.string(),
  kind: z.enum(['person', 'agent']),
  roles: z.array(Role),
  groups: z.array(z.string()),
  email: z.string().nullable(),
  slack_user_id: z.string().nullable(),
  platform_admin: z.boolean(),
  agent_id: z.string().nullable().describe('The agent id this principal decides as (null: none; it may only act for acts_for).'),
  acts_for: z.array(z.string()),
  disabled: z.boolean(),
  created_at: z.string(),
});
export type PrincipalView = z.infer<typeof PrincipalView>;

export const UpdatePrincipalBody = z
  .strictObject({
    name: Name.optional(),
    roles: Roles.min(1).optional(),
    groups: Groups.optional(),
    email: Email.nullable().optional(),
    slack_user_id: SlackUserId.nullable().optional(),
    disabled: z.boolean().optional().describe('A disabled member cannot authenticate; members are never deleted (events name them).'),
    agent_id: PrincipalAgentId.nullable().optional(),
    acts_for: ActsFor.optional(),
  })
  .refine((b) => Object.keys(b).length > 0, 'nothing to change');
export type UpdatePrincipalBody = z.infer<typeof UpdatePrincipalBody>;

export const CreateApiKeyBody = z.strictObject({
  principal_id: PrincipalIdParam.optional().describe('Whose key. Default: the caller. Only admins create keys for others.'),
  name: z.string().max(200).default(''),
  expires_at: Expiry.optional(),
});
export type CreateApiKeyBody = z.infer<typeof CreateApiKeyBody>;

export const ApiKeyView = z.strictObject({
  id: z.string(),
  prefix: z.string().describe('Public part of the key (cs_<prefix>_…), safe to show and log.'),
  name: z.string(),
  principal_id: z.string(),
  created_at: z.string(),
  expires_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
  status: z.enum(['active', 'expired', 'revoked']),
});
export type ApiKeyView = z.infer<typeof ApiKeyView>;

export const CreateApiKeyResponse = ApiKeyView.extend({ api_key: z.string().describe('Shown once; stored only as a hash.') });
