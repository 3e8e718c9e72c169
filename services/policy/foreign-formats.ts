import { z } from 'zod';
import { ModelLists } from '../../schemas/policy.ts';

/**
 * Policy documents in other products' shapes (the seed pages), recognised only when `apiVersion` is
 * absent, and converted to contract v1. Each shape is validated strictly in its own coordinates, so
 * errors point at the field the author wrote; rules keep their index, so rule errors map unchanged.
 *
 * - workspace policy (seed 004): `{ policy_id, content: { agent: { models, capabilities }, compliance } }`
 * - rule-list policy (seeds 000 and 003): `{ id?, name, description?, domain?, version?, is_active?, rules }`
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
  name: z.string().min(1).max(200),
  description: z.string().max(5000).optional(),
  domain: z.string().max(200).optional(),
  version: z.union([z.string(), z.number()]).optional(),
  is_active: z.boolean().optional(),
  status: z.string().optional(),
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
    return {
      kind: 'rule-list',
      document: {
        apiVersion: 'countersign/v1',
        kind: 'Policy',
        metadata: {
          id: d.id ?? d.policy_id ?? slug(d.name),
          name: d.name,
          ...(d.description !== undefined ? { description: d.description } : {}),
          ...(d.domain !== undefined ? { domain: d.domain } : {}),
        },
        scope: { level: 'tenant' },
        rules: d.rules,
      },
    };
  }
  return { kind: 'v1', document: doc };
}
