import { z } from 'zod';
import { ModelLists } from '../../schemas/policy.ts';

/**
 * Policy documents in other products' shapes (the seed pages), recognised only when `apiVersion` is
 * absent, and converted to contract v1. Each shape is validated strictly in its own coordinates, so
 * errors point at the field the author wrote; rules keep their index, so rule errors map unchanged.
 *
 * - workspace policy (seed 004): `{ policy_id, content: { agent: { models, capabilities }, compliance } }`
 * - rule-list policy (seeds 000, 002 and 003): `{ id?, name?, description?, domain?, version?, is_active?, on_fail?, rules }`;
 *   `version` and `is_active: true` are kept as labels (`source.version`, `source.is_active`), never dropped
 */
const Seed004Capabilities = z.strictObject({
  allowed_tools: z.array(z.string().min(1).max(200)).max(1000).optional(),
  denied_tools: z.array(z.string().min(1).max(200)).max(1000).optional(),
  require_tool_approval: z.boolean().optional(),
});

const Seed004 = z.strictObject({
  policy_id: z.string().min(1).max(100),
  workspace_id: z.string().optional(),
  version: z.union([z.string(), z.number()]).optional(),
  status: z.string().optional(),
  content: z.strictObject({
    agent: z.strictObject({ models: ModelLists.optional(), capabilities: Seed004Capabilities.optional() }),
    compliance: z.strictObject({ frameworks: z.array(z.string()).optional(), require_audit_logging: z.boolean().optional() }).optional(),
  }),
  hash: z.string().optional(),
  signature: z.string().optional(),
  signing_key_id: z.string().optional(),
});

const RuleList = z.strictObject({
  id: z.string().min(1).max(100).optional(),
  policy_id: z.string().min(1).max(100).optional(),
  name: z.string().min(1).max(200).optional(),
  description: z.string().max(5000).optional(),
  domain: z.string().max(200).optional(),
  version: z.union([z.string().max(100), z.number()]).optional().describe('Kept as the label source.version; versions here are numbered at activation.'),
  is_active: z.boolean().refine((v) => v, { message: 'is_active: false is refused: a policy stops applying when it is deprecated (POST /v1/policies/{id}/deprecate); drop the field, or set it to true' }).optional(),
  on_fail: z.enum(['DENY', 'REQUIRE_APPROVAL']).optional(),
  rules: z.array(z.unknown()),
});

export type AdaptResult = { kind: 'v1' | 'workspace' | 'rule-list'; document: unknown } | { kind: 'error'; issues: z.core.$ZodIssue[] };

function slug(text: string): string {
  const s = text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 100);
  return s === '' ? 'imported' : s;
}

export function adaptForeignDocument(doc: unknown): AdaptResult {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || 'apiVersion' in doc) return { kind: 'v1', document: doc };
  if ('content' in doc) {
    const parsed = Seed004.safeParse(doc, { reportInput: true });
    if (!parsed.success) return { kind: 'error', issues: parsed.error.issues };
    const { content, policy_id } = parsed.data;
    const caps = content.agent.capabilities;
    const tools = caps === undefined ? undefined : {
      ...(caps.allowed_tools !== undefined ? { allowed: caps.allowed_tools } : {}),
      ...(caps.denied_tools !== undefined ? { denied: caps.denied_tools } : {}),
      // The workspace flag asks for approval of every tool call; `*` says exactly that in our vocabulary.
      ...(caps.require_tool_approval === true ? { require_approval: ['*'] } : {}),
    };
    return {
      kind: 'workspace',
      document: {
        apiVersion: 'countersign/v1',
        kind: 'Policy',
        metadata: { id: policy_id, ...(content.compliance !== undefined ? { compliance: content.compliance } : {}) },
        scope: { level: 'tenant' },
        ...(content.agent.models !== undefined ? { models: content.agent.models } : {}),
        ...(tools !== undefined ? { tools } : {}),
        rules: [],
      },
    };
  }
  if ('rules' in doc) {
    const parsed = RuleList.safeParse(doc, { reportInput: true });
    if (!parsed.success) return { kind: 'error', issues: parsed.error.issues };
    const d = parsed.data;
    // A bare rule list (seed 002) names neither itself nor its id: both are derived from its rule names,
    // and shown back in the answer (metadata.id, metadata.name).
    const ruleNames = d.rules.map((r) => (typeof r === 'object' && r !== null && typeof (r as { name?: unknown }).name === 'string' ? (r as { name: string }).name : null)).filter((n): n is string => n !== null);
    const name = d.name ?? (ruleNames.length > 0 ? `Rules: ${ruleNames.join(', ')}` : 'Rules').slice(0, 200);
    const labels: Record<string, string> = {};
    if (d.version !== undefined) labels['source.version'] = String(d.version);
    if (d.is_active !== undefined) labels['source.is_active'] = 'true';
    return {
      kind: 'rule-list',
      document: {
        apiVersion: 'countersign/v1',
        kind: 'Policy',
        metadata: {
          id: d.id ?? d.policy_id ?? slug(d.name ?? (ruleNames.length > 0 ? ruleNames.join('-') : 'rules')),
          name,
          ...(d.description !== undefined ? { description: d.description } : {}),
          ...(d.domain !== undefined ? { domain: d.domain } : {}),
          ...(Object.keys(labels).length > 0 ? { labels } : {}),
        },
        scope: { level: 'tenant' },
        ...(d.on_fail !== undefined ? { on_fail: d.on_fail } : {}),
        rules: d.rules,
      },
    };
  }
  return { kind: 'v1', document: doc };
}
