import { z } from 'zod';
import { Evaluation } from './decision.ts';

/*
 * The answers of the policy routes (/v1/policies, /v1/platform/policies, agent bindings and manifests,
 * simulate), as the OpenAPI document describes them. Objects are loose: the serializer parses each answer
 * with its schema, and a loose object keeps any field a later version adds instead of dropping it.
 */

const Json = z.record(z.string(), z.unknown());
const Iso = z.string().describe('ISO 8601 instant.');
const PolicyStatus = z.enum(['draft', 'active', 'deprecated', 'deleted']);
const Scope = z.looseObject({
  level: z.enum(['platform', 'tenant', 'agent']),
  agent: z.string().optional().describe('level agent: the agent it applies to.'),
}).describe('Where the policy applies.');
const PlatformMark = {
  read_only: z.literal(true).optional().describe('A platform policy shown to a tenant: it cannot change it.'),
};

export const ActivationReviewSummary = z.looseObject({
  review_id: z.string(),
  version: z.number().int(),
  status: z.enum(['open', 'approved', 'rejected', 'expired']),
  requested_by: z.string(),
  authors: z.array(z.string()),
  deadline: Iso,
  document_hash: z.string(),
  expected_loosening: z.array(z.string()),
  approved_by: z.string().nullable(),
  rejected_by: z.string().nullable(),
}).describe('The latest four-eyes review of the policy (open, or how it ended).');
export type ActivationReviewSummary = z.infer<typeof ActivationReviewSummary>;

export const DraftSummary = z.looseObject({
  version: z.number().int().describe('The version the draft becomes when activated.'),
  updated_at: Iso,
  cloned_from: z.number().int().nullable(),
  imported: z.boolean(),
  authors: z.array(z.string()).describe('Everyone who wrote this draft: none of them may approve its activation.'),
  validation: Json.nullable().describe('The last validation of exactly this document, if any.'),
});

export const PolicySummary = z.looseObject({
  id: z.string(),
  name: z.string().nullable(),
  domain: z.string().nullable(),
  status: PolicyStatus,
  active_version: z.number().int().nullable(),
  latest_version: z.number().int().nullable(),
  scope: Scope,
  draft: DraftSummary.nullable(),
  activation_review: ActivationReviewSummary.nullable(),
  ...PlatformMark,
}).describe('A policy and its status.');
export type PolicySummary = z.infer<typeof PolicySummary>;

export const PolicyList = z.looseObject({ items: z.array(PolicySummary) });
export type PolicyList = z.infer<typeof PolicyList>;

export const Interpretation = z.looseObject({
  index: z.number().int().describe('The rule\'s index in the document.'),
  text: z.string().describe('The natural-language rule as written.'),
  interpreted: Json.describe('Its compiled form.'),
});

export const PolicyDraftAnswer = PolicySummary.extend({
  version: z.number().int().nullable().describe('The draft\'s version, else the active one.'),
  document: Json.nullable().describe('The draft document (null without a draft).'),
  interpreted: z.array(z.unknown()).describe('The natural-language rules of the document with their compiled form.'),
}).describe('A policy after a change of its draft (create, replace, clone, import).');
export type PolicyDraftAnswer = z.infer<typeof PolicyDraftAnswer>;

export const VersionSummary = z.looseObject({
  version: z.number().int(),
  hash: z.string(),
  signature: z.string().nullable(),
  signing_key_id: z.string().nullable(),
  scope: Scope,
  activated_by: z.string(),
  activated_at: Iso,
  active: z.boolean(),
  rolled_back_to: z.number().int().nullable(),
  cloned_from: z.number().int().nullable(),
  approved_by: z.string().nullable(),
  imported: z.boolean(),
});
export type VersionSummary = z.infer<typeof VersionSummary>;

export const PolicyDetail = PolicySummary.extend({
  draft_document: Json.nullable(),
  active: VersionSummary.extend({ document: Json }).nullable().describe('The active version with its document.'),
  interpreted: z.array(Interpretation).describe('Natural-language rules of the document shown (the draft, else the active version).'),
});
export type PolicyDetail = z.infer<typeof PolicyDetail>;

export const PolicyVersions = z.looseObject({
  id: z.string(),
  active_version: z.number().int().nullable(),
  items: z.array(VersionSummary).describe('Every activated version, oldest first.'),
  scope: Scope.optional().describe('Present (level platform) on a platform policy shown to a tenant.'),
  ...PlatformMark,
});
export type PolicyVersions = z.infer<typeof PolicyVersions>;

export const PolicyDiff = z.looseObject({
  id: z.string(),
  from: z.string(),
  to: z.string(),
  rules: z.array(z.looseObject({
    rule: z.string().describe('The rule\'s name, else its text, else #index.'),
    change: z.enum(['added', 'removed', 'changed', 'unchanged']),
    from: z.unknown().optional(),
    to: z.unknown().optional(),
  })),
  other: z.array(z.looseObject({ field: z.string(), from: z.unknown(), to: z.unknown() })).describe('Top-level fields other than rules that differ.'),
});
export type PolicyDiff = z.infer<typeof PolicyDiff>;

const Counts = { stricter: z.number().int(), looser: z.number().int(), unchanged: z.number().int(), changed: z.number().int() };
export const ValidationReport = z.looseObject({
  version: z.number().int(),
  document_hash: z.string(),
  runs: z.number().int(),
  window_days: z.number().int(),
  ...Counts,
  by_rule: z.record(z.string(), z.looseObject(Counts)),
  examples: z.array(z.looseObject({ decision_id: z.string(), before: z.string(), after: z.string(), rule: z.string().nullable() })),
}).describe('The draft replayed against recent runs: which decisions would change.');
export type ValidationReport = z.infer<typeof ValidationReport>;

export const ActivationAnswer = z.looseObject({
  id: z.string(),
  version: z.number().int(),
  hash: z.string(),
  signature: z.string(),
  signing_key_id: z.string(),
  status: z.literal('active'),
  unchanged: z.boolean(),
  rolled_back_to: z.number().int().optional().describe('A rollback: the version re-activated.'),
});
export type ActivationAnswer = z.infer<typeof ActivationAnswer>;

export const PolicyChangeSchema = z.discriminatedUnion('kind', [
  z.looseObject({ kind: z.literal('rollback'), to_version: z.number().int() }),
  z.looseObject({ kind: z.literal('deprecate'), version: z.number().int() }),
  z.looseObject({ kind: z.literal('bind'), agent_id: z.string() }),
  z.looseObject({ kind: z.literal('unbind'), agent_id: z.string() }),
]);

export const ReviewRequested = z.looseObject({
  id: z.string(),
  version: z.number().int(),
  status: z.literal('pending_approval'),
  review_id: z.string().describe('Answered by a second admin at POST …/{id}/activation/approvals.'),
  deadline: Iso,
  authors: z.array(z.string()),
  requested_by: z.string(),
  change: PolicyChangeSchema.optional().describe('What the review stands for when it is not the activation of the draft.'),
}).describe('Four-eyes: a review opened instead of the change (202).');
export type ReviewRequested = z.infer<typeof ReviewRequested>;

export const ReviewAnswer = z.looseObject({
  id: z.string(),
  review_id: z.string(),
  counted: z.literal(true),
  status: z.enum(['open', 'approved', 'rejected', 'expired']),
  version: z.number().int(),
  hash: z.string().optional(),
});
export type ReviewAnswer = z.infer<typeof ReviewAnswer>;

export const DeprecateAnswer = PolicySummary;

export const BindingChangeAnswer = z.looseObject({
  agent_id: z.string(),
  policy_id: z.string().nullable().describe('The policy now bound (null after an unbinding).'),
  unchanged: z.boolean().optional().describe('A binding: true when that policy was already bound.'),
});
export type BindingChangeAnswer = z.infer<typeof BindingChangeAnswer>;

export const AgentBinding = z.looseObject({
  agent_id: z.string(),
  policy_id: z.string().nullable(),
  version: z.number().int().nullable(),
  hash: z.string().nullable(),
  document: Json.nullable().describe("The bound policy's active version's document."),
});
export type AgentBinding = z.infer<typeof AgentBinding>;

export const ManifestAnswer = z.looseObject({
  agent_id: z.string(),
  accepted: z.boolean(),
  forced: z.boolean(),
  violations: z.array(z.looseObject({
    kind: z.enum(['provider', 'model', 'tool']), item: z.string(), policy_id: z.string(), version: z.number().int(), rule: z.string(), reason: z.string(),
  })),
  policies: z.array(z.looseObject({ policy_id: z.string(), version: z.number().int() })),
});
export type ManifestAnswer = z.infer<typeof ManifestAnswer>;

const RouteLevel = z.looseObject({
  level: z.number().int(),
  groups: z.array(z.string()),
  eligible_groups: z.array(z.string()),
  quorum: z.number().int(),
  starts_at: Iso,
  deadline: Iso,
  notified: z.array(z.looseObject({
    principal_id: z.string(),
    name: z.string(),
    channels: z.array(z.enum(['dashboard', 'slack', 'email'])),
    on_behalf_of: z.array(z.string()).optional().describe('Approvers away whose delegate this person is.'),
  })).describe('Who this level would notify now, and on which channels.'),
});
export const ApprovalRoute = z.array(z.looseObject({
  id: z.number().int(),
  policy_id: z.string(),
  version: z.number().int(),
  rule: z.string(),
  on_timeout: z.enum(['DENY', 'ALLOW']),
  levels: z.array(RouteLevel),
  final_deadline: Iso,
})).describe('For a REQUIRE_APPROVAL: each requirement\'s levels, their groups, deadlines and the people each would notify.');
export type ApprovalRoute = z.infer<typeof ApprovalRoute>;

export const SimulateAnswer = z.looseObject({
  ...Evaluation.shape,
  status: z.enum(['final', 'pending_approval']),
  interpreted: z.array(Interpretation).optional(),
  policies: z.array(z.looseObject({ policy_id: z.string(), version: z.number().int() })).describe('The active policies the request was evaluated against.'),
  approval_route: ApprovalRoute.optional(),
}).describe('The decision a request would get, without starting anything.');
export type SimulateAnswer = z.infer<typeof SimulateAnswer>;
