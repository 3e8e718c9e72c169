import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { CountersignError, fieldErrors } from '../errors.ts';
import { appendToStream } from '../events/append-to-stream.ts';
import { withTenant, type Db } from '../events/db.ts';
import type { CompiledPolicy, Snapshot } from '../policy/index.ts';
import { compileGlobList } from '../policy/glob.ts';
import { policyApplies } from '../policy/runtime.ts';
import { agentStreamId } from './policy-store.ts';
import type { Actor } from './policy-lifecycle.ts';

/**
 * The agent manifest check (issue 7, seed 004's push): an agent declares the providers, models and tools it
 * will use, and each is checked against the tenant's active policies that apply to that agent: the model and
 * tool lists, and rules that DENY a tool outright (no condition, nothing else to match). Pure over the
 * compiled set; `pushManifest` adds the I/O: a refusal writes nothing, `force` records AgentManifestForced.
 */
const Name = z.string().min(1).max(200);
export const AgentManifest = z.strictObject({
  apiVersion: z.literal('countersign/v1').optional(),
  kind: z.literal('AgentManifest').optional(),
  agent: z.strictObject({ id: Name, name: z.string().max(200).optional() }),
  providers: z.array(Name).max(100).default([]),
  models: z.array(z.strictObject({ provider: Name, model: Name })).max(500).default([]),
  tools: z.array(z.union([Name, z.strictObject({ name: Name, operations: z.array(Name).max(100).optional() })])).max(1000).default([]),
});
export type AgentManifest = z.infer<typeof AgentManifest>;

export type ManifestViolation = { kind: 'provider' | 'model' | 'tool'; item: string; policy_id: string; version: number; rule: string; reason: string };

export function parseManifest(raw: unknown): AgentManifest {
  const r = AgentManifest.safeParse(raw);
  if (!r.success) throw new CountersignError('validation_failed', 'the agent manifest is invalid', { errors: fieldErrors(r.error.issues) });
  return r.data;
}

/** Every declared provider, model and tool that an applicable active policy would refuse. */
export function checkManifest(snapshot: Snapshot, m: AgentManifest): ManifestViolation[] {
  const out: ManifestViolation[] = [];
  const applicable = snapshot.policies.filter((p) => p.level !== 'builtin' && policyApplies(p, m.agent.id));
  const tools = m.tools.map((t) => (typeof t === 'string' ? t : t.name));
  const providers = [...new Set([...m.providers, ...m.models.map((x) => x.provider)])];
  for (const p of applicable) {
    const where = `policy ${p.policy_id} v${p.version}`;
    const v = (kind: ManifestViolation['kind'], item: string, rule: string, reason: string) => out.push({ kind, item, policy_id: p.policy_id, version: p.version, rule, reason });
    if (p.models) {
      const lists = p.models;
      for (const provider of providers) {
        if (lists.denied_providers.includes(provider)) v('provider', provider, 'models.denied_providers', `provider ${provider} is on the models.denied_providers list of ${where}`);
        else if (lists.allowed_providers.length > 0 && !lists.allowed_providers.includes(provider)) v('provider', provider, 'models.allowed_providers', `provider ${provider} is not on the models.allowed_providers list of ${where}`);
      }
      for (const { provider, model } of m.models) {
        const item = `${provider}/${model}`;
        if (lists.denied_models.includes(model)) v('model', item, 'models.denied_models', `model ${model} is on the models.denied_models list of ${where}`);
        else if (lists.allowed_models.length > 0 && !lists.allowed_models.includes(model)) v('model', item, 'models.allowed_models', `model ${model} is not on the models.allowed_models list of ${where}`);
      }
    }
    if (p.tools) {
      const denied = p.tools.denied.length > 0 ? compileGlobList(p.tools.denied) : undefined;
      const allowed = p.tools.allowed.length > 0 ? compileGlobList(p.tools.allowed) : undefined;
      for (const tool of tools) {
        if (denied?.(tool)) v('tool', tool, 'tools.denied', `tool ${tool} is on the tools.denied list of ${where}`);
        else if (allowed && !allowed(tool)) v('tool', tool, 'tools.allowed', `tool ${tool} is not on the tools.allowed list of ${where}`);
      }
    }
    for (const rule of p.rules) {
      if (!isUnconditionalToolDeny(rule)) continue;
      const match = compileGlobList(rule.match.tool!);
      for (const tool of tools) if (match(tool)) v('tool', tool, rule.name, `rule ${rule.name} of ${where} denies tool ${tool}: ${rule.reason}`);
    }
  }
  return out;
}

/** A rule that denies a tool whatever the call: only `match.tool`, no condition, no limit, on requests. */
function isUnconditionalToolDeny(rule: CompiledPolicy['rules'][number]): boolean {
  if (rule.decision !== 'DENY' || rule.on !== 'request' || rule.condition !== undefined || rule.limit !== undefined) return false;
  const keys = Object.keys(rule.match);
  return keys.length === 1 && keys[0] === 'tool' && (rule.match.tool?.length ?? 0) > 0;
}

export type ManifestAnswer = { agent_id: string; accepted: boolean; forced: boolean; violations: ManifestViolation[]; policies: Array<{ policy_id: string; version: number }> };

/**
 * Checks a manifest for the agent in the path. Violations refuse it (409, each listed, nothing written) unless
 * `force`, which records AgentManifestForced with the violations as they were overridden.
 */
export async function pushManifest(
  db: Db, a: Actor & { roles: string[] }, agentId: string, raw: unknown, force: boolean,
  effective: (agentId: string) => Promise<{ snapshot: Snapshot }>, now = new Date(),
): Promise<ManifestAnswer> {
  const m = parseManifest(raw);
  if (m.agent.id !== agentId) throw new CountersignError('validation_failed', `the manifest is for agent ${m.agent.id}, not ${agentId}`, { errors: [{ path: 'agent.id', message: `must be ${agentId}` }] });
  const { snapshot } = await effective(agentId);
  const violations = checkManifest(snapshot, m);
  const policies = snapshot.policies.filter((p) => p.level !== 'builtin' && policyApplies(p, agentId)).map((p) => ({ policy_id: p.policy_id, version: p.version }));
  if (violations.length === 0) return { agent_id: agentId, accepted: true, forced: false, violations, policies };
  if (!force) {
    throw new CountersignError('conflict', `the manifest of agent ${agentId} has ${violations.length} violation${violations.length === 1 ? '' : 's'} of the active policies: ${violations.map((v) => v.reason).join('; ')}`, { extra: { violations } });
  }
  if (!a.roles.some((r) => r === 'admin' || r === 'author')) throw new CountersignError('forbidden', 'only an admin or a policy author may force a manifest past its violations');
  const stream = agentStreamId(a.tenantId, agentId);
  const head = await withTenant(db, a.tenantId, (c) => c.query<{ v: number | null }>('SELECT max(stream_version) AS v FROM events WHERE stream_id = $1', [stream]));
  await appendToStream(db, {
    streamId: stream, tenantId: a.tenantId, expectedVersion: head.rows[0]?.v ?? 0, recordedAt: now,
    events: [{ type: 'AgentManifestForced', eventId: `${stream}/manifest-forced/${randomUUID()}`, data: { agent_id: agentId, manifest: m, by: a.principalId, violations } }],
  });
  return { agent_id: agentId, accepted: true, forced: true, violations, policies };
}
