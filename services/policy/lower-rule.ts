import { Approval, EFFECTS, Match, type PolicyRule } from '../../schemas/policy.ts';
import { durationSeconds } from '../../schemas/duration.ts';
import type { Decision } from '../../schemas/decision-kind.ts';
import { compileCel } from './cel.ts';
import { compileSentence, nameFromSentence } from './natural-language.ts';
import type { IssuePath } from './policy-error.ts';
import type { CompiledApproval, CompiledApprovalLevel, CompiledLimit, CompiledMatch, CompiledRule } from './snapshot.ts';

/**
 * Lowers one validated rule, whatever form it was written in, to the single compiled shape evaluation
 * understands. Natural-language and imported forms become ordinary structured rules here, so
 * evaluation has exactly one kind of rule to run.
 */
export type RuleIssue = { path: IssuePath; message: string };
export type LowerResult = { ok: true; rule: CompiledRule } | { ok: false; errors: RuleIssue[] };

const DEFAULT_APPROVAL = Approval.parse({ approvers: ['approvers'] });
const DEFAULT_QUORUM = 1;
const DEFAULT_TIMEOUT = '1h';

/**
 * A timeout the rule did not write is marked, so the tenant's approval_timeout can stand in for the built-in 1h
 * when a run starts (services/decisions/approval-timeout.ts); a written one is never replaced.
 */
const defaulted = (written: string | undefined): { timeout_defaulted?: true } => (written === undefined ? { timeout_defaulted: true } : {});

export function normaliseApproval(a: Approval | undefined): CompiledApproval {
  const src = a ?? DEFAULT_APPROVAL;
  if (src.levels !== undefined) {
    const levels: CompiledApprovalLevel[] = src.levels.map((l) => {
      const timeout = l.timeout ?? DEFAULT_TIMEOUT;
      return { approvers: [...l.approvers], quorum: l.quorum ?? DEFAULT_QUORUM, timeout, timeout_sec: durationSeconds(timeout)!, ...defaulted(l.timeout) };
    });
    const first = levels[0]!;
    return { approvers: [...first.approvers], quorum: first.quorum, timeout: first.timeout, timeout_sec: first.timeout_sec, on_timeout: src.on_timeout, levels, ...defaulted(src.levels[0]!.timeout) };
  }
  const timeout = src.timeout ?? DEFAULT_TIMEOUT;
  const out: CompiledApproval = {
    approvers: [...(src.approvers ?? DEFAULT_APPROVAL.approvers!)],
    quorum: src.quorum ?? DEFAULT_QUORUM,
    timeout,
    timeout_sec: durationSeconds(timeout)!,
    on_timeout: src.on_timeout,
    ...defaulted(src.timeout),
  };
  if (src.escalate_to !== undefined) out.escalate_to = [...src.escalate_to];
  if (src.escalate_after !== undefined) {
    out.escalate_after = src.escalate_after;
    out.escalate_after_sec = durationSeconds(src.escalate_after)!;
  }
  // Only when written, so the compiled form (and the hash) of a policy that does not use it is unchanged.
  if (src.allow_edits !== undefined) out.allow_edits = src.allow_edits;
  return out;
}

const list = (v: string | string[] | undefined): string[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? [...v] : [v]);

export function normaliseMatch(m: Match | undefined): CompiledMatch {
  if (m === undefined) return {};
  const out: CompiledMatch = {};
  const set = <K extends keyof CompiledMatch>(k: K, v: CompiledMatch[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('tool', list(m.tool));
  set('operation', list(m.operation));
  set('topic', list(m.topic));
  set('capability', list(m.capability));
  set('environment', list(m.environment));
  set('risk_tags', m.risk_tags === undefined ? undefined : [...m.risk_tags]);
  set('agent', list(m.agent));
  set('model_provider', list(m.model?.provider));
  set('model', list(m.model?.model));
  if (m.time !== undefined) {
    const t: NonNullable<CompiledMatch['time']> = { timezone: m.time.timezone };
    if (m.time.days !== undefined) t.days = [...m.time.days];
    if (m.time.after !== undefined) t.after = m.time.after;
    if (m.time.before !== undefined) t.before = m.time.before;
    out.time = t;
  }
  return out;
}

function normaliseLimit(l: NonNullable<PolicyRule['limit']>): CompiledLimit {
  const out: CompiledLimit = { kind: l.kind, max: l.max, window: l.window, window_sec: durationSeconds(l.window)!, per: l.per };
  if (l.field !== undefined) out.field = l.field;
  return out;
}

const DECISION_WORDS: Record<Decision, string> = {
  DENY: 'denied',
  REQUIRE_APPROVAL: 'requires approval',
  ALLOW_WITH_CONSTRAINTS: 'allowed with constraints',
  ALLOW: 'allowed',
};

export function defaultReason(name: string, decision: Decision): string {
  return `${DECISION_WORDS[decision]} by rule ${name}`;
}

export function lowerRule(rule: PolicyRule, index: number, onFail: 'DENY' | 'REQUIRE_APPROVAL' = 'DENY'): LowerResult {
  const errors: RuleIssue[] = [];
  const decisionHint: Decision | undefined = rule.decision ?? (rule.effect !== undefined ? EFFECTS[rule.effect] : undefined);
  let name = rule.name;
  let match: CompiledMatch = normaliseMatch(rule.match);
  let condition = rule.condition;
  let limit = rule.limit === undefined ? undefined : normaliseLimit(rule.limit);
  let decision = decisionHint;
  let reason = rule.reason;
  let approval = rule.approval;
  let text: string | undefined;
  let conditionPath: IssuePath = ['condition'];
  let judgment: CompiledRule['judgment'];
  let flag: string | undefined;

  const sentence = rule.text ?? (rule.effect !== undefined ? rule.condition : undefined);
  if (rule.type === 'deterministic') {
    // Seed 003: "plain boolean expressions" every request must satisfy. One that fails decides the policy's
    // on_fail (DENY unless set); evaluation turns all of them holding into the policy's ALLOW.
    condition = `!(${rule.expr!})`;
    conditionPath = ['expr'];
    decision = onFail;
    reason ??= `requirement not met: ${rule.expr!}`;
    name ??= `rule-${index + 1}`;
    if (approval !== undefined && onFail !== 'REQUIRE_APPROVAL') errors.push({ path: ['approval'], message: 'approval is only for requirements of a policy whose on_fail is REQUIRE_APPROVAL' });
  } else if (sentence !== undefined) {
    const sentencePath: IssuePath = [rule.text !== undefined ? 'text' : 'condition'];
    const compiled = compileSentence(sentence, decisionHint);
    // A sentence outside the grammar (not one whose verb contradicts the rule's decision) needs judgment.
    if (!compiled.ok && rule.type === 'nl' && (decisionHint === undefined || !compileSentence(sentence).ok)) return lowerJudgment(rule, sentence, decisionHint, onFail);
    if (!compiled.ok) return { ok: false, errors: [{ path: sentencePath, message: rule.type === 'nl' ? compiled.message : `${compiled.message}; or, if it needs a person's judgment, write it as { type: nl, text: ... } (a judgment rule: approvers check it)` }] };
    if (rule.applies_to !== undefined) return { ok: false, errors: [{ path: ['applies_to'], message: `applies_to is for judgment rules; "${sentence}" has one exact reading, which says what it applies to` }] };
    const interpreted = compiled.rule;
    if (interpreted.flag !== undefined) flag = interpreted.flag;
    const parsedMatch = Match.safeParse(interpreted.match);
    if (!parsedMatch.success) return { ok: false, errors: [{ path: sentencePath, message: `cannot compile "${sentence}": ${parsedMatch.error.issues[0]?.message ?? 'bad match'}` }] };
    match = normaliseMatch(parsedMatch.data);
    condition = interpreted.condition;
    conditionPath = sentencePath;
    if (interpreted.limit !== undefined) limit = { ...interpreted.limit, window_sec: durationSeconds(interpreted.limit.window)! };
    decision = interpreted.decision;
    reason ??= interpreted.reason;
    if (approval === undefined && interpreted.approval !== undefined) approval = Approval.parse(interpreted.approval);
    text = sentence;
    name ??= nameFromSentence(sentence);
  }
  name ??= `rule-${index + 1}`;
  if (decision === undefined) return { ok: false, errors: [{ path: ['decision'], message: 'a rule needs a decision' }] };
  if (condition !== undefined) {
    const cel = compileCel(condition, rule.on === 'outcome' ? 'outcome' : 'request');
    if (!cel.ok) errors.push({ path: conditionPath, message: cel.message });
  }
  if (errors.length > 0) return { ok: false, errors };
  const out: CompiledRule = {
    name,
    on: rule.on,
    match,
    decision,
    reason: reason ?? defaultReason(name, decision),
    constraints: rule.constraints === undefined ? {} : stripUndefined(rule.constraints),
  };
  if (condition !== undefined) out.condition = condition;
  if (limit !== undefined) out.limit = limit;
  if (decision === 'REQUIRE_APPROVAL') out.approval = normaliseApproval(approval);
  if (text !== undefined) out.text = text;
  if (rule.type === 'deterministic') out.requirement = rule.expr!;
  if (flag !== undefined) out.flag = flag;
  if (judgment !== undefined) out.judgment = judgment;
  return { ok: true, rule: out };
}

/**
 * A `type: nl` sentence the grammar cannot read exactly: a judgment rule. It applies to every request of its
 * policy (or those `applies_to` matches) and needs approval, with the sentence as the approvers' checklist;
 * a tenant's evaluator may decide it instead, and its `fail` decides the effect: the rule's decision or
 * effect if given, else the policy's on_fail, else DENY. Never an ALLOW: a judgment only ever tightens.
 */
function lowerJudgment(rule: PolicyRule, sentence: string, decisionHint: Decision | undefined, onFail: 'DENY' | 'REQUIRE_APPROVAL'): LowerResult {
  if (decisionHint !== undefined && decisionHint !== 'DENY' && decisionHint !== 'REQUIRE_APPROVAL') {
    return { ok: false, errors: [{ path: [rule.decision !== undefined ? 'decision' : 'effect'], message: `"${sentence}" needs judgment, and a judgment rule decides DENY or REQUIRE_APPROVAL when it fails, never ${decisionHint}` }] };
  }
  if (rule.constraints !== undefined) return { ok: false, errors: [{ path: ['constraints'], message: 'constraints are not allowed on a judgment rule: it decides by a person (or an evaluator), not by constraints' }] };
  if (rule.on === 'outcome') return { ok: false, errors: [{ path: ['on'], message: 'a judgment rule checks requests, not outcomes' }] };
  let match: CompiledMatch = {};
  if (rule.applies_to !== undefined) match = normaliseMatch(rule.applies_to);
  const name = rule.name ?? nameFromSentence(sentence);
  const out: CompiledRule = {
    name,
    on: 'request',
    match,
    decision: 'REQUIRE_APPROVAL',
    // The sentence itself is shown only as the checklist (escaped as untrusted text on every channel).
    reason: rule.reason ?? `judgment rule ${name} needs a person: see its checklist`,
    constraints: {},
    approval: normaliseApproval(rule.approval),
    text: sentence,
    judgment: { effect: decisionHint === 'REQUIRE_APPROVAL' ? 'REQUIRE_APPROVAL' : decisionHint === 'DENY' ? 'DENY' : onFail },
  };
  return { ok: true, rule: out };
}

function stripUndefined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
