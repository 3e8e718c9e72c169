import type { z } from 'zod';
import { MAX_RULES_PER_POLICY, PolicyDocument, PolicyRule } from '../../schemas/policy.ts';
import { durationSeconds } from '../../schemas/duration.ts';
import { checkValueBounds } from './input-bounds.ts';
import { adaptForeignDocument } from './foreign-formats.ts';
import { lowerRule, normaliseApproval } from './lower-rule.ts';
import type { IssuePath } from './policy-error.ts';
import type { CompiledPolicy, CompiledRule } from './snapshot.ts';

/** A problem in one document, by path; parse-text.ts turns paths into line:col when it has the text. */
export type DocumentIssue = { path: IssuePath; message: string; /** Point at the key rather than its value. */ atKey?: boolean };
export type DocumentResult = { ok: true; document: PolicyDocument; policy: CompiledPolicy } | { ok: false; issues: DocumentIssue[] };

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** zod issues in our words: one issue per unknown key, and the offending value for bad enum values. */
export function zodIssues(issues: readonly z.core.$ZodIssue[]): DocumentIssue[] {
  const out: DocumentIssue[] = [];
  for (const issue of issues) {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: [...path, key], message: `unknown field "${key}"`, atKey: true });
    } else if ('input' in issue && issue.input === undefined && (issue.code === 'invalid_value' || issue.code === 'invalid_type')) {
      out.push({ path, message: `missing required field: ${issue.code === 'invalid_value' ? `expected ${issue.values.map((v) => String(v)).join(' or ')}` : issue.message.replace(/^Invalid input: /, '')}` });
    } else if (issue.code === 'invalid_value' && 'input' in issue) {
      out.push({ path, message: `unknown value ${describe(issue.input)}: expected one of ${issue.values.map((v) => String(v)).join(', ')}` });
    } else {
      out.push({ path, message: issue.message.replace(/^Invalid input: /, '') });
    }
  }
  return out;
}

/**
 * When the document fails its schema, rules that are valid on their own are still compiled, so CEL and
 * natural-language errors are reported in the same run as schema errors (every error, not the first).
 */
function ruleIssuesDespiteSchema(doc: unknown): DocumentIssue[] {
  const rules = typeof doc === 'object' && doc !== null ? (doc as Record<string, unknown>)['rules'] : undefined;
  if (!Array.isArray(rules)) return [];
  const out: DocumentIssue[] = [];
  rules.slice(0, MAX_RULES_PER_POLICY).forEach((raw, i) => {
    const r = PolicyRule.safeParse(raw);
    if (!r.success) return;
    const lowered = lowerRule(r.data, i);
    if (!lowered.ok) for (const e of lowered.errors) out.push({ path: ['rules', i, ...e.path], message: e.message });
  });
  return out;
}

/** Validates one document (any accepted shape) and compiles it; every problem is collected, not just the first. */
export function compileDocument(raw: unknown, version: number, bound_agents?: string[]): DocumentResult {
  if (raw === null || raw === undefined) return { ok: false, issues: [{ path: [], message: 'empty policy document' }] };
  const bounds = checkValueBounds(raw);
  if (bounds !== undefined) return { ok: false, issues: [bounds] };
  const adapted = adaptForeignDocument(raw);
  if (adapted.kind === 'error') return { ok: false, issues: zodIssues(adapted.issues) };
  const parsed = PolicyDocument.safeParse(adapted.document, { reportInput: true });
  if (!parsed.success) return { ok: false, issues: [...zodIssues(parsed.error.issues), ...ruleIssuesDespiteSchema(adapted.document)] };
  const doc = parsed.data;
  const issues: DocumentIssue[] = [];
  if (!Number.isInteger(version) || version < 0) issues.push({ path: [], message: `version must be a non-negative integer, got ${version}` });
  const rules: CompiledRule[] = [];
  const names = new Map<string, number>();
  if (doc.default_decision !== undefined) {
    // Evaluation never read it (the tenant's setting decides when nothing matches), so it is refused rather than dropped.
    issues.push({ path: ['default_decision'], message: 'default_decision is not a policy field: the decision when nothing matches is the tenant setting default_decision (PATCH /v1/tenants/{id}); a policy of requirements (type: deterministic rules) ALLOWs on its own when they all hold', atKey: true });
  }
  const onFail = doc.on_fail ?? 'DENY';
  if (doc.on_fail !== undefined && !doc.rules.some((r) => r.type === 'deterministic')) {
    issues.push({ path: ['on_fail'], message: 'on_fail says what a failed requirement decides, and this policy has none (no type: deterministic rule)', atKey: true });
  }
  doc.rules.forEach((rule, i) => {
    const lowered = lowerRule(rule, i, onFail);
    if (!lowered.ok) {
      for (const e of lowered.errors) issues.push({ path: ['rules', i, ...e.path], message: e.message });
      return;
    }
    const first = names.get(lowered.rule.name);
    if (first !== undefined) {
      issues.push({ path: ['rules', i, rule.name !== undefined ? 'name' : rule.text !== undefined ? 'text' : 'condition'], message: `duplicate rule name "${lowered.rule.name}" (also rules[${first}]); give one of them a name` });
      return;
    }
    names.set(lowered.rule.name, i);
    rules.push(lowered.rule);
  });
  if (issues.length > 0) return { ok: false, issues };
  const policy: CompiledPolicy = { policy_id: doc.metadata.id, version, level: doc.scope.level, rules };
  if (doc.scope.agent !== undefined) policy.agent = doc.scope.agent;
  if (doc.override !== undefined) {
    // Only the fields given, so a policy without override settings compiles (and hashes) as before.
    const o: NonNullable<CompiledPolicy['override']> = {};
    if (doc.override.groups !== undefined) o.groups = [...doc.override.groups];
    if (doc.override.timeout !== undefined) o.timeout_sec = durationSeconds(doc.override.timeout)!;
    if (doc.override.window !== undefined) o.window_sec = durationSeconds(doc.override.window)!;
    policy.override = o;
  }
  if (bound_agents !== undefined) policy.bound_agents = [...bound_agents].sort();
  if (doc.models !== undefined) {
    policy.models = {
      allowed_providers: doc.models.allowed_providers ?? [],
      denied_providers: doc.models.denied_providers ?? [],
      allowed_models: doc.models.allowed_models ?? [],
      denied_models: doc.models.denied_models ?? [],
    };
  }
  if (doc.tools !== undefined) {
    policy.tools = {
      allowed: doc.tools.allowed ?? [],
      denied: doc.tools.denied ?? [],
      require_approval: doc.tools.require_approval ?? [],
      approval: normaliseApproval(doc.tools.approval),
    };
  }
  return { ok: true, document: doc, policy };
}
