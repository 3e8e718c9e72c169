import { z } from 'zod';
import { Decision, DecisionStatus } from './decision.ts';

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

export const DecisionListQuery = PageQuery.extend({
  status: DecisionStatus.optional().describe('Only final or only pending decisions.'),
  agent: z.string().max(200).optional().describe('Only this agent id.'),
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
});
export type DecisionSummary = z.infer<typeof DecisionSummary>;
