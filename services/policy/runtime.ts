import type { DecisionRequest } from '../../schemas/decision.ts';
import { compileCel, fastOf, type CelProgram } from './cel.ts';
import type { FastCondition } from './cel-fast.ts';
import { hashSnapshotBody } from './compile.ts';
import { compileGlobList, isGlob, type GlobMatcher } from './glob.ts';
import { inTimeWindow } from './time-window.ts';
import type { CompiledMatch, CompiledPolicy, CompiledRule, Snapshot, SnapshotBody } from './snapshot.ts';

/**
 * The ready-to-evaluate form of a snapshot: match tests as closures, CEL programs, and an index by
 * tool and operation, so the cost of an evaluation grows with the rules that can match, not with all
 * rules. Derived only from the snapshot's JSON and cached in a WeakMap keyed by the snapshot object, so a
 * snapshot that went through JSON.stringify/parse evaluates identically.
 */
export type MatchTest = (request: DecisionRequest, now: Date) => boolean;

export type PreparedRule = {
  seq: number;
  policy: CompiledPolicy;
  rule: CompiledRule;
  test: MatchTest;
  program?: CelProgram;
  /** The program's direct form (cel-fast.ts), tried first; the program decides whenever it is unsure. */
  fast?: FastCondition;
  /** A CEL compile error (only possible if the snapshot was altered or the CEL library changed). */
  programError?: string;
  /** The rule names a tool with a pattern other than a bare `*` (it can set a circuit breaker aside). */
  namesTool: boolean;
  builtin: boolean;
  /** What evaluate.ts reports when this rule matches, built on first match (it depends on the rule alone). */
  hit?: object;
};

export type PreparedLists = {
  seq: number;
  policy: CompiledPolicy;
  toolDenied?: GlobMatcher;
  toolAllowed?: GlobMatcher;
  toolRequireApproval?: GlobMatcher;
};

export type Runtime = {
  snapshot: Snapshot;
  /** Set when the snapshot cannot be trusted; every evaluation then fails closed with it. */
  defect?: string;
  lists: PreparedLists[];
  byTool: Map<string, { byOperation: Map<string, PreparedRule[]>; anyOperation: PreparedRule[] }>;
  anyTool: PreparedRule[];
  outcomeRules: PreparedRule[];
  limitRules: PreparedRule[];
  /** Policies with requirements (CompiledRule.requirement), in snapshot order: each ALLOWs when all of its hold. */
  requirementPolicies: CompiledPolicy[];
  /** Rules that flag a request with a risk tag ("Flag as high-risk if …"), checked before every other rule. */
  flagRules: PreparedRule[];
};

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export function compileMatch(m: CompiledMatch): MatchTest {
  const tests: MatchTest[] = [];
  const glob = (patterns: string[] | undefined, get: (r: DecisionRequest) => string | undefined) => {
    if (patterns === undefined) return;
    const g = compileGlobList(patterns);
    tests.push((r) => {
      const v = get(r);
      return v !== undefined && g(v);
    });
  };
  const oneOf = (values: string[] | undefined, get: (r: DecisionRequest) => string | undefined) => {
    if (values === undefined) return;
    const set = new Set(values);
    tests.push((r) => {
      const v = get(r);
      return v !== undefined && set.has(v);
    });
  };
  glob(m.tool, (r) => r.action.tool);
  glob(m.operation, (r) => r.action.operation);
  glob(m.topic, (r) => r.action.topic);
  glob(m.capability, (r) => r.action.capability);
  glob(m.agent, (r) => r.agent.id);
  oneOf(m.environment, (r) => str(r.context?.environment));
  oneOf(m.model_provider, (r) => r.model?.provider);
  oneOf(m.model, (r) => r.model?.model);
  if (m.risk_tags !== undefined) {
    const need = m.risk_tags;
    tests.push((r) => {
      const tags: unknown = r.context?.risk_tags;
      return Array.isArray(tags) && need.every((t) => tags.includes(t));
    });
  }
  if (m.time !== undefined) {
    const window = m.time;
    tests.push((_r, now) => inTimeWindow(window, now));
  }
  if (tests.length === 0) return () => true;
  if (tests.length === 1) return tests[0]!;
  return (r, now) => {
    for (const t of tests) if (!t(r, now)) return false;
    return true;
  };
}

export function prepareRule(seq: number, policy: CompiledPolicy, rule: CompiledRule): PreparedRule {
  const p: PreparedRule = {
    seq,
    policy,
    rule,
    test: compileMatch(rule.match),
    namesTool: rule.match.tool !== undefined && !rule.match.tool.every((t) => /^\*+$/.test(t)),
    builtin: policy.level === 'builtin',
  };
  if (rule.condition !== undefined) {
    const c = compileCel(rule.condition, rule.on === 'outcome' ? 'outcome' : 'request');
    if (c.ok) {
      p.program = c.program;
      const fast = fastOf(c.program);
      if (fast !== undefined) p.fast = fast;
    }
    else p.programError = c.message;
  }
  return p;
}

function bySeq(a: PreparedRule, b: PreparedRule): number {
  return a.seq - b.seq;
}

function buildIndex(rules: PreparedRule[]): Pick<Runtime, 'byTool' | 'anyTool'> {
  const anyTool: PreparedRule[] = [];
  const perTool = new Map<string, { exactOps: Map<string, PreparedRule[]>; anyOp: PreparedRule[] }>();
  for (const r of rules) {
    const tools = r.rule.match.tool;
    if (tools === undefined || tools.some(isGlob)) {
      anyTool.push(r);
      continue;
    }
    for (const tool of tools) {
      let entry = perTool.get(tool);
      if (entry === undefined) perTool.set(tool, (entry = { exactOps: new Map(), anyOp: [] }));
      const ops = r.rule.match.operation;
      if (ops === undefined || ops.some(isGlob)) entry.anyOp.push(r);
      else for (const op of ops) entry.exactOps.set(op, [...(entry.exactOps.get(op) ?? []), r]);
    }
  }
  const byTool: Runtime['byTool'] = new Map();
  for (const [tool, entry] of perTool) {
    const anyOperation = [...entry.anyOp, ...anyTool].sort(bySeq);
    const byOperation = new Map<string, PreparedRule[]>();
    for (const [op, list] of entry.exactOps) byOperation.set(op, [...new Set([...list, ...anyOperation])].sort(bySeq));
    byTool.set(tool, { byOperation, anyOperation });
  }
  return { byTool, anyTool };
}

function snapshotBody(s: Snapshot): SnapshotBody {
  return { format: s.format, default_decision: s.default_decision, policies: s.policies };
}

function prepare(snapshot: Snapshot): Runtime {
  const empty: Runtime = { snapshot, lists: [], byTool: new Map(), anyTool: [], outcomeRules: [], limitRules: [], requirementPolicies: [], flagRules: [] };
  try {
    if (typeof snapshot !== 'object' || snapshot === null || !Array.isArray(snapshot.policies)) return { ...empty, defect: 'snapshot is malformed' };
    // An altered snapshot must not decide: the hash is what receipts and replays point at.
    if (hashSnapshotBody(snapshotBody(snapshot)) !== snapshot.hash) return { ...empty, defect: 'snapshot hash does not match its content' };
    const lists: PreparedLists[] = [];
    const requestRules: PreparedRule[] = [];
    const outcomeRules: PreparedRule[] = [];
    const requirementPolicies: CompiledPolicy[] = [];
    let seq = 0;
    for (const policy of snapshot.policies) {
      if (policy.tools !== undefined) {
        const t = policy.tools;
        const l: PreparedLists = { seq: seq++, policy };
        if (t.denied.length > 0) l.toolDenied = compileGlobList(t.denied);
        if (t.allowed.length > 0) l.toolAllowed = compileGlobList(t.allowed);
        if (t.require_approval.length > 0) l.toolRequireApproval = compileGlobList(t.require_approval);
        lists.push(l);
      } else if (policy.models !== undefined) lists.push({ seq: seq++, policy });
      if (policy.level !== 'builtin' && policy.rules.some((r) => r.requirement !== undefined)) requirementPolicies.push(policy);
      for (const rule of policy.rules) {
        const p = prepareRule(seq++, policy, rule);
        (rule.on === 'outcome' ? outcomeRules : requestRules).push(p);
      }
    }
    return { snapshot, lists, ...buildIndex(requestRules), outcomeRules, limitRules: requestRules.filter((r) => r.rule.limit !== undefined), requirementPolicies, flagRules: requestRules.filter((r) => r.rule.flag !== undefined) };
  } catch (err) {
    return { ...empty, defect: `snapshot could not be loaded: ${err instanceof Error ? err.message : String(err)}` };
  }
}

const runtimes = new WeakMap<object, Runtime>();
// The runtime used last, checked before the WeakMap: consecutive evaluations mostly share a snapshot, and a
// WeakMap probe is several cache misses when other work has run in between.
let last: Runtime | undefined;

/** The prepared form of a snapshot, built once per snapshot object. */
export function loadSnapshot(snapshot: Snapshot): Runtime {
  if (last !== undefined && last.snapshot === snapshot) return last;
  if (typeof snapshot !== 'object' || snapshot === null) return prepare(snapshot);
  let rt = runtimes.get(snapshot);
  if (rt === undefined) {
    rt = prepare(snapshot);
    runtimes.set(snapshot, rt);
  }
  last = rt;
  return rt;
}

/** Rules that can match this tool and operation, in snapshot order. */
export function candidateRules(rt: Runtime, tool: string, operation: string | undefined): PreparedRule[] {
  const entry = rt.byTool.get(tool);
  if (entry === undefined) return rt.anyTool;
  if (operation === undefined) return entry.anyOperation;
  return entry.byOperation.get(operation) ?? entry.anyOperation;
}

/** Does the policy apply to this agent? Agent-scoped policies govern their agent; bound ones their bound agents. */
export function policyApplies(policy: CompiledPolicy, agentId: string): boolean {
  if (policy.level !== 'agent' && policy.bound_agents === undefined) return true;
  if (policy.level === 'agent' && policy.agent !== agentId) return false;
  if (policy.bound_agents !== undefined && !policy.bound_agents.includes(agentId)) return false;
  return true;
}
