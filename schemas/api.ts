import { z } from 'zod';
import { Decision, DecisionStatus, MatchedRule, ReasonCode } from './decision.ts';

/** Shapes every route shares: problems, cursor pages, and list items that are not another schema's. */

export const ProblemSchema = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    code: z.string().describe('From the one error table (services/errors.ts).'),
    detail: z.string(),
    instance: z.string().optional().describe('The request id.'),
    errors: z.array(z.strictObject({ path: z.string(), message: z.string() })).optional(),
  })
  .describe('RFC 9457 problem details.');

export const MAX_PAGE_SIZE = 200;

export const PageQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(50).describe(`Items per page, 1-${MAX_PAGE_SIZE}.`),
  cursor: z.string().max(200).optional().describe('next_cursor of the previous page.'),
});

/** A page of items; next_cursor is null on the last page. Cursors are opaque. */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.strictObject({ items: z.array(item), next_cursor: z.string().nullable() });
}

/** The monitor's filters: each narrows the list; together they all hold. Values are matched exactly. */
const FilterText = z.string().max(200).regex(/^\P{Cc}*$/u, 'no control characters');
export const DecisionListQuery = PageQuery.extend({
  status: DecisionStatus.optional().describe('Only final or only pending decisions (pending: not final yet).'),
  agent: FilterText.optional().describe('Only this agent id.'),
  decision: Decision.optional().describe('Only this decision (as it stands: the final one once the run is final).'),
  policy_id: FilterText.optional().describe('Only decisions whose deciding rule is in this policy.'),
  policy_version: z.coerce.number().int().min(0).max(2_147_483_647).optional().describe('Only decisions decided by this version of the policy (with policy_id).'),
  rule: FilterText.optional().describe('Only decisions whose deciding rule has this name.'),
  tool: FilterText.optional().describe('Only requests for this tool.'),
  operation: FilterText.optional().describe('Only requests for this operation.'),
  since: z.iso.datetime({ offset: true }).optional().describe('Only decisions requested at or after this time (ISO 8601).'),
  until: z.iso.datetime({ offset: true }).optional().describe('Only decisions requested before this time (ISO 8601).'),
});

export const DecisionSummary = z.strictObject({
  decision_id: z.string(),
  agent_id: z.string(),
  tool: z.string(),
  operation: z.string().nullable(),
  decision: Decision.nullable().describe('Null until the policy evaluation is recorded.'),
  status: z.enum(['requested', 'pending_approval', 'final']),
  reason: z.string(),
  requested_by: z.string(),
  requested_at: z.string(),
  reason_code: ReasonCode.optional().describe('What decided it, as in the decision result.'),
  matched_rule: z.string().nullable().optional().describe('The deciding rule; null when the tenant default decided or before evaluation.'),
  policy_id: z.string().nullable().optional().describe('The policy of the deciding rule.'),
  policy_version: z.number().int().nullable().optional().describe('The version of that policy.'),
  matched_rules: z.array(MatchedRule).optional().describe('Every rule that matched, with its policy and version.'),
  snapshot_hash: z.string().nullable().optional(),
  decided_at: z.string().nullable().optional().describe('When the run became final.'),
  run_id: z.string().optional().describe('The Temporal workflow id of the run.'),
  input_digest: z.string().optional().describe('sha256 of the request as asked (request_digest).'),
  input: z.unknown().optional().describe('The request itself (agent, action with args, context, model): only for admins, auditors and approvers.'),
});
export type DecisionSummary = z.infer<typeof DecisionSummary>;
