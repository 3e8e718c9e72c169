import type { Decision } from '../../schemas/decision-kind.ts';
import type { DecisionRequest, Evaluation, MatchedRule } from '../../schemas/decision.ts';
import type { Constraints } from '../../schemas/constraints.ts';
import { checkRule, lazyVars, type LazyVars } from './check-rule.ts';
import { CEL_EVALUATION_BUDGET } from './cel-budget.ts';
import { restrictiveness } from './compile.ts';
import type { Facts } from './counters.ts';
import { mergeConstraints } from './merge-constraints.ts';
import { PER_CALL_POLICY, preparePerCallRule } from './per-call-rules.ts';
import { candidateRules, loadSnapshot, policyApplies, type PreparedLists, type PreparedRule, type Runtime } from './runtime.ts';
import type { CompiledApproval, CompiledPolicy, Snapshot } from './snapshot.ts';
import { factRiskTags, withRiskTags } from './tool-catalog.ts';

/** One rule (or list) that matched, in evaluation order. Never mutated: rules share theirs across evaluations. */
export type Hit = {
  policy: CompiledPolicy;
  rule: string;
  decision: Decision;
  reason: string;
  constraints: Constraints;
  approval?: CompiledApproval;
  namesTool: boolean;
  builtin: boolean;
  /** The hit of a requirement that failed (or could not be evaluated). */
  requirement?: true;
  /** The hit of a judgment rule: its sentence, and what a fail verdict decides. */
  judgment?: { text: string; effect: 'DENY' | 'REQUIRE_APPROVAL' };
};

/** The rule name of a requirement policy's ALLOW. */
export const REQUIREMENTS_RULE = 'requirements';
const held = new WeakMap<CompiledPolicy, Hit>();

function requirementsHeld(policy: CompiledPolicy): Hit {
  let h = held.get(policy);
  if (h === undefined) {
    const exprs = policy.rules.filter((r) => r.requirement !== undefined).map((r) => r.requirement!);
    h = { policy, rule: REQUIREMENTS_RULE, decision: 'ALLOW', reason: `every requirement of policy ${policy.policy_id} v${policy.version} holds: ${exprs.join('; ')}`, constraints: {}, namesTool: false, builtin: false };
    held.set(policy, h);
  }
  return h;
}

const EPOCH_ISO = new Date(0).toISOString();

// Date#toISOString is a measurable share of an evaluation; many evaluations share a millisecond.
let lastMs = Number.NaN;
let lastIso = EPOCH_ISO;
function isoOf(now: Date): string {
  const ms = now.getTime();
  if (ms !== lastMs) {
    lastIso = now.toISOString();
    lastMs = ms;
  }
  return lastIso;
}

/** The hit of a matched rule; built once per prepared rule, since it depends on nothing else. */
function hitFromRule(p: PreparedRule): Hit {
  let h = p.hit as Hit | undefined;
  if (h === undefined) {
    h = { policy: p.policy, rule: p.rule.name, decision: p.rule.decision, reason: p.rule.reason, constraints: p.rule.constraints, namesTool: p.namesTool, builtin: p.builtin };
    if (p.rule.approval !== undefined) h.approval = p.rule.approval;
    if (p.rule.requirement !== undefined) h.requirement = true;
    if (p.rule.judgment !== undefined) h.judgment = { text: p.rule.text ?? p.rule.reason, effect: p.rule.judgment.effect };
    p.hit = h;
  }
  return h;
}

function failClosedHit(policy: CompiledPolicy, rule: string, error: string, builtin = false): Hit {
  return {
    policy,
    rule,
    decision: 'DENY',
    reason: `rule ${rule} of policy ${policy.policy_id} v${policy.version} could not be evaluated (${error}); failing closed`,
    constraints: {},
    namesTool: false,
    builtin,
  };
}

function listHit(policy: CompiledPolicy, rule: string, decision: Decision, reason: string, approval?: CompiledApproval): Hit {
  const h: Hit = { policy, rule, decision, reason, constraints: {}, namesTool: false, builtin: false };
  if (approval !== undefined) h.approval = approval;
  return h;
}

/** Policy-level model and tool lists (seed 004). A deny-list hit, or a miss on a non-empty allow-list, is DENY. */
function checkLists(l: PreparedLists, request: DecisionRequest, hits: Hit[]): void {
  const p = l.policy;
  const where = `policy ${p.policy_id} v${p.version}`;
  if (p.models !== undefined && request.model !== undefined) {
    const { provider, model } = request.model;
    const m = p.models;
    if (provider !== undefined && m.denied_providers.includes(provider)) hits.push(listHit(p, 'models.denied_providers', 'DENY', `provider ${provider} is on the models.denied_providers list of ${where}`));
    if (model !== undefined && m.denied_models.includes(model)) hits.push(listHit(p, 'models.denied_models', 'DENY', `model ${model} is on the models.denied_models list of ${where}`));
    if (m.allowed_providers.length > 0 && (provider === undefined || !m.allowed_providers.includes(provider)))
      hits.push(listHit(p, 'models.allowed_providers', 'DENY', `provider ${provider ?? '(not named)'} is not on the models.allowed_providers list of ${where}`));
    if (m.allowed_models.length > 0 && (model === undefined || !m.allowed_models.includes(model)))
      hits.push(listHit(p, 'models.allowed_models', 'DENY', `model ${model ?? '(not named)'} is not on the models.allowed_models list of ${where}`));
  }
  const tool = request.action.tool;
  if (l.toolDenied?.(tool)) hits.push(listHit(p, 'tools.denied', 'DENY', `tool ${tool} is on the tools.denied list of ${where}`));
  if (l.toolAllowed !== undefined) {
    if (l.toolAllowed(tool)) hits.push(listHit(p, 'tools.allowed', 'ALLOW', `tool ${tool} is on the tools.allowed list of ${where}`));
    else hits.push(listHit(p, 'tools.allowed', 'DENY', `tool ${tool} is not on the tools.allowed list of ${where}`));
  }
  if (l.toolRequireApproval?.(tool)) hits.push(listHit(p, 'tools.require_approval', 'REQUIRE_APPROVAL', `tool ${tool} is on the tools.require_approval list of ${where}`, p.tools!.approval));
}

function denyAll(snapshot: Snapshot, facts: Facts, nowIso: string, reason: string): Evaluation {
  return {
    decision: 'DENY',
    reason,
    matched_rule: null,
    matched_rules: [],
    constraints: {},
    snapshot_hash: typeof snapshot?.hash === 'string' && /^sha256:[0-9a-f]{64}$/.test(snapshot.hash) ? snapshot.hash : `sha256:${'0'.repeat(64)}`,
    facts: plainFacts(facts),
    now: nowIso,
  };
}

function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}

/** A JSON-safe copy of the facts as recorded in the evaluation (replay reads them back from JSON). */
function plainFacts(facts: Facts): Record<string, unknown> {
  if (facts === null || typeof facts !== 'object' || isEmpty(facts)) return {};
  try {
    return JSON.parse(JSON.stringify(facts)) as Record<string, unknown>;
  } catch {
    return {};
  }
}

function describeAction(request: DecisionRequest): string {
  const op = request.action.operation;
  return op === undefined ? request.action.tool : `${request.action.tool}/${op}`;
}

function mostRestrictive(hits: Hit[], from: Decision): Decision {
  let d = from;
  for (const h of hits) if (restrictiveness(h.decision) < restrictiveness(d)) d = h.decision;
  return d;
}

// The hits of the evaluation in progress. Module-level and emptied at each start, because arrays made per
// evaluation were a large share of what an evaluation allocated, and the young-generation collections that
// allocation causes land in the tail of evaluation latency. Safe because evaluation is synchronous and never
// re-entered (nothing it calls reaches evaluate), and nothing returned refers to these arrays.
const STORED: Hit[] = [];
const PACK: Hit[] = [];
/** The CEL variables box of the evaluation in progress, reset the same way (its variables are built lazily). */
const VARS: LazyVars = lazyVars({ agent: { id: '' }, action: { tool: '' } } as DecisionRequest, new Date(0));

// The hot path below uses plain loops and no closures: under tsx every arrow function allocated per
// evaluation is also renamed (keepNames), which cost more than the matching itself.
function run(rt: Runtime, asked: DecisionRequest, facts: Facts, now: Date, nowIso: string): Evaluation {
  const snapshot = rt.snapshot;
  if (rt.defect !== undefined) return denyAll(snapshot, facts, nowIso, `${rt.defect}; failing closed`);
  const agentId = asked.agent.id;
  let request = asked;
  const vars = VARS;
  vars.request = request;
  vars.now = now;
  vars.vars = undefined;
  vars.budget.left = CEL_EVALUATION_BUDGET;
  // Flags first: a request flagged ("Flag as high-risk if …") carries the tag for every rule after, as the
  // catalog's tags do (added, never removed). Pure, so replay flags it the same way.
  const flagRules = rt.flagRules;
  if (flagRules.length > 0) {
    const tags: string[] = [];
    for (let i = 0; i < flagRules.length; i++) {
      const p = flagRules[i]!;
      if (!policyApplies(p.policy, agentId)) continue;
      if (checkRule(p, request, now, facts, vars).applies === true) tags.push(p.rule.flag!);
    }
    if (tags.length > 0) {
      request = withRiskTags(request, tags);
      // The same box, its variables rebuilt from the tagged request; the CEL budget runs on.
      vars.request = request;
      vars.vars = undefined;
    }
  }

  const stored = STORED;
  const pack = PACK;
  // Emptied at the end of every evaluation; emptied here only after one that threw (setting a length is a call).
  if (stored.length !== 0) stored.length = 0;
  if (pack.length !== 0) pack.length = 0;
  // Lists come before their policy's rules; stored policies come before the pack (snapshot order).
  const candidates = candidateRules(rt, request.action.tool, request.action.operation);
  const lists = rt.lists;
  let li = 0;
  for (const p of candidates) {
    while (li < lists.length && lists[li]!.seq < p.seq) {
      const l = lists[li++]!;
      if (policyApplies(l.policy, agentId)) checkLists(l, request, stored);
    }
    if (!policyApplies(p.policy, agentId)) continue;
    const c = checkRule(p, request, now, facts, vars);
    if (c.applies === false) continue;
    let hit = c.applies === true ? hitFromRule(p) : failClosedHit(p.policy, p.rule.name, c.error, p.builtin);
    if (c.applies !== true && p.rule.requirement !== undefined) hit = { ...hit, requirement: true };
    (p.builtin ? pack : stored).push(hit);
  }
  while (li < lists.length) {
    const l = lists[li++]!;
    if (policyApplies(l.policy, agentId)) checkLists(l, request, stored);
  }
  // A policy of requirements ALLOWs a request it applies to when none of its requirements fired (a failed
  // one, or one that could not be evaluated, is a hit of its own and keeps this ALLOW out).
  const reqPolicies = rt.requirementPolicies;
  for (let i = 0; i < reqPolicies.length; i++) {
    const rp = reqPolicies[i]!;
    if (!policyApplies(rp, agentId)) continue;
    let failed = false;
    for (const h of stored) {
      if (h.policy === rp && h.requirement) {
        failed = true;
        break;
      }
    }
    if (!failed) stored.push(requirementsHeld(rp));
  }

  // Precedence: a stored rule that names this tool (and matched) sets the circuit breakers aside. A pack hit
  // that failed closed still counts, because an error never loosens a decision.
  let breakersSetAside = false;
  for (const h of stored) if (h.namesTool) breakersSetAside = true;
  const all: Hit[] = stored;
  for (const h of pack) if (!breakersSetAside || h.decision === 'DENY') all.push(h);
  const base: Decision = all.length > 0 ? mostRestrictive(all, 'ALLOW') : snapshot.default_decision;

  // Per-call rules: added for this call only; they can only tighten what the stored set decided.
  const rules: unknown[] = Array.isArray(request.policy_rules) ? request.policy_rules : [];
  for (let i = 0; i < rules.length; i++) {
    const prepared = preparePerCallRule(rules[i], i);
    let hit: Hit | undefined;
    if (!prepared.ok) hit = failClosedHit(PER_CALL_POLICY, prepared.name, prepared.error);
    else if (prepared.rule.rule.on === 'request') {
      const p = prepared.rule;
      const c = checkRule(p, request, now, facts, vars);
      if (c.applies !== false) hit = c.applies === true ? hitFromRule(p) : failClosedHit(p.policy, p.rule.name, c.error);
    }
    if (hit !== undefined && restrictiveness(hit.decision) <= restrictiveness(base)) all.push(hit);
  }
  const decision = mostRestrictive(all, base);

  // The deciding rule is the first (in snapshot order, per-call rules last) with the final decision;
  // none when the tenant default decided.
  let deciding: Hit | undefined;
  for (const h of all) {
    if (h.decision === decision) {
      deciding = h;
      break;
    }
  }
  const constraints: Record<string, unknown> = {};
  if (decision !== 'DENY') for (const h of all) mergeConstraints(constraints, h.constraints);
  // Sized once (a pushed array grows its backing store to 17 slots at the first push).
  const matched: MatchedRule[] = new Array<MatchedRule>(all.length);
  for (let i = 0; i < all.length; i++) {
    const h = all[i]!;
    const m: MatchedRule = { policy_id: h.policy.policy_id, version: h.policy.version, rule: h.rule, decision: h.decision };
    // A platform policy's rule says so: a tenant may have a policy of the same id, and needs to know it cannot change this one.
    if (h.policy.level === 'platform') m.scope = 'platform';
    matched[i] = m;
  }
  const evaluation: Evaluation = {
    decision,
    reason: deciding?.reason ?? `no rule matched ${describeAction(request)} for agent ${agentId}; the tenant default decision is ${decision}`,
    matched_rule: deciding?.rule ?? null,
    matched_rules: matched,
    constraints: constraints,
    snapshot_hash: snapshot.hash,
    facts: plainFacts(facts),
    now: nowIso,
  };
  // Approval settings come from stored policies only: a per-call rule that decides leaves the workflow's defaults.
  if (decision === 'REQUIRE_APPROVAL' && deciding?.approval !== undefined && deciding.policy !== PER_CALL_POLICY) evaluation.approval = { ...deciding.approval };
  if (decision === 'REQUIRE_APPROVAL') {
    approvalRequirements(all, evaluation);
    let judged = false;
    for (const h of all) if (h.judgment !== undefined) judged = true;
    if (judged) evaluation.judgment = judgmentOf(all, snapshot.default_decision, request, agentId);
  }
  // The box and the arrays would otherwise keep this request reachable until the next evaluation.
  vars.vars = undefined;
  if (stored.length !== 0) stored.length = 0;
  if (pack.length !== 0) pack.length = 0;
  return evaluation;
}

/** The checklist of the judgment rules that matched, and the decision of the other hits when they all pass. */
function judgmentOf(all: Hit[], defaultDecision: Decision, request: DecisionRequest, agentId: string): NonNullable<Evaluation['judgment']> {
  const checklist: NonNullable<Evaluation['judgment']>['checklist'] = [];
  const rest: Hit[] = [];
  for (const h of all) {
    if (h.judgment !== undefined) checklist.push({ policy_id: h.policy.policy_id, version: h.policy.version, rule: h.rule, text: h.judgment.text, effect: h.judgment.effect });
    else rest.push(h);
  }
  const decision = rest.length > 0 ? mostRestrictive(rest, 'ALLOW') : defaultDecision;
  let deciding: Hit | undefined;
  for (const h of rest) {
    if (h.decision === decision) {
      deciding = h;
      break;
    }
  }
  const constraints: Record<string, unknown> = {};
  if (decision !== 'DENY') for (const h of rest) mergeConstraints(constraints, h.constraints);
  const if_passed: NonNullable<Evaluation['judgment']>['if_passed'] = {
    decision,
    reason: deciding?.reason ?? `no rule but judgment rules matched ${describeAction(request)} for agent ${agentId}; the tenant default decision is ${decision}`,
    matched_rule: deciding?.rule ?? null,
    constraints,
  };
  if (decision === 'REQUIRE_APPROVAL' && deciding?.approval !== undefined && deciding.policy !== PER_CALL_POLICY) if_passed.approval = { ...deciding.approval };
  return { checklist, if_passed };
}

/**
 * Every matched rule that requires approval is a requirement of its own: each one's approvers must approve.
 * Recorded only when there is more than one (with one, `approval` says it all, as it always did).
 */
function approvalRequirements(all: Hit[], evaluation: Evaluation): void {
  let found: NonNullable<Evaluation['requirements']> | undefined;
  for (const h of all) {
    if (h.decision !== 'REQUIRE_APPROVAL' || h.approval === undefined || h.policy === PER_CALL_POLICY) continue;
    (found ??= []).push({ policy_id: h.policy.policy_id, version: h.policy.version, rule: h.rule, approval: { ...h.approval } });
  }
  if (found !== undefined && found.length > 1) evaluation.requirements = found;
}

/**
 * Evaluates a request against a compiled snapshot. Pure: the clock is `now`, counters come in `facts`,
 * and so do the tool catalog's risk tags (`facts.tool_catalog.risk_tags`, added to the request's own).
 * Total: any error (a CEL runtime error, a missing variable or fact, a damaged snapshot) becomes a DENY
 * whose reason names the rule and the error; it never throws and never allows by accident.
 */
export function evaluate(snapshot: Snapshot, request: DecisionRequest, facts: Facts, now: Date): Evaluation {
  const validNow = now instanceof Date && !Number.isNaN(now.getTime());
  const nowIso = validNow ? isoOf(now) : EPOCH_ISO;
  try {
    if (!validNow) return denyAll(snapshot, facts, nowIso, 'the evaluation clock (now) is not a valid date; failing closed');
    if (typeof request !== 'object' || request === null || typeof request.action?.tool !== 'string' || typeof request.agent?.id !== 'string')
      return denyAll(snapshot, facts, nowIso, 'the request has no action.tool or agent.id; failing closed');
    // The tenant's tool catalog is a fact like the counters: the tags it derived are recorded, and added
    // here (never removing the agent's own), so replay re-derives the decision from the record alone.
    let effective = request;
    const catalog = facts?.['tool_catalog'];
    if (catalog !== undefined) {
      const tags = factRiskTags(catalog);
      if (!tags.ok) return denyAll(snapshot, facts, nowIso, `${tags.error}; failing closed`);
      effective = withRiskTags(request, tags.tags);
    }
    return run(loadSnapshot(snapshot), effective, facts ?? {}, now, nowIso);
  } catch (err) {
    return denyAll(snapshot, facts, nowIso, `evaluation failed (${err instanceof Error ? err.message : String(err)}); failing closed`);
  }
}
