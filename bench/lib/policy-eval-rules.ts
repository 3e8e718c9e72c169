// The policy-eval benchmark's rule sets, requests, compiled snapshot and hand-written JS floor, shared by
// bench/policy-eval.ts (timing) and bench/policy-eval-gc.ts (allocation and collections).
import { DecisionRequest } from '../../schemas/decision.ts';
import { DECISIONS, type Decision } from '../../schemas/decision-kind.ts';
import { compile, type Snapshot } from '../../services/policy/index.ts';

export type BenchRule = { name: string; tool: string; op: string; env?: string; threshold?: number; decision: Decision };

/** A deterministic generator (mulberry32): the same rule sets and requests on every run. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function ruleSet(n: number): BenchRule[] {
  const tools = Math.max(2, n / 8);
  const rand = rng(n);
  return Array.from({ length: n }, (_, i) => {
    const r: BenchRule = { name: `r${i}`, tool: `t${i % tools}`, op: `Op${Math.floor(i / tools) % 4}`, decision: i % 5 === 0 ? 'DENY' : i % 5 === 1 ? 'REQUIRE_APPROVAL' : 'ALLOW' };
    if (i % 3 !== 2) r.env = rand() < 0.5 ? 'prod' : 'dev';
    if (i % 2 === 0) r.threshold = Math.floor(rand() * 1000);
    return r;
  });
}

export function requests(n: number, count: number): DecisionRequest[] {
  const tools = Math.max(2, n / 8);
  const rand = rng(n * 7919);
  return Array.from({ length: count }, () =>
    DecisionRequest.parse({
      agent: { id: 'bench-agent' },
      action: { tool: rand() < 0.1 ? 'unknown_tool' : `t${Math.floor(rand() * tools)}`, operation: `Op${Math.floor(rand() * 4)}` },
      context: { environment: rand() < 0.5 ? 'prod' : 'dev', amount: Math.floor(rand() * 1000), vendor_status: rand() < 0.7 ? 'approved' : 'pending' },
    }),
  );
}

export const celCondition = (r: BenchRule) => (r.threshold === undefined ? undefined : `amount > ${r.threshold} && vendor_status == "approved"`);
export const rank = (d: Decision) => DECISIONS.indexOf(d);

// --- countersign ---------------------------------------------------------------------------------
/** The rule set as one policy, compiled (by `compileWith`: another checkout's compile, to compare code versions). */
export function ourSnapshot(rules: BenchRule[], compileWith: typeof compile = compile): Snapshot {
  const doc = {
    apiVersion: 'countersign/v1',
    kind: 'Policy',
    metadata: { id: 'bench' },
    rules: rules.map((r) => ({ name: r.name, match: { tool: r.tool, operation: r.op, ...(r.env ? { environment: r.env } : {}) }, ...(celCondition(r) ? { condition: celCondition(r) } : {}), decision: r.decision })),
  };
  const c = compileWith([{ document: doc, version: 1 }], { circuitBreakers: false, defaultDecision: 'DENY' });
  if (!c.ok) throw new Error(JSON.stringify(c.errors));
  return c.snapshot;
}

// --- hand-written JS (the floor) -------------------------------------------------------------------
export type HandRule = { name: string; decision: Decision; test: (q: DecisionRequest) => boolean };
export function handRules(rules: BenchRule[]): HandRule[] {
  return rules.map((r) => ({
    name: r.name,
    decision: r.decision,
    test: (q) => {
      if (q.action.tool !== r.tool || q.action.operation !== r.op) return false;
      const c = q.context as { environment?: string; amount?: number; vendor_status?: string };
      if (r.env !== undefined && c.environment !== r.env) return false;
      if (r.threshold !== undefined && !((c.amount ?? 0) > r.threshold && c.vendor_status === 'approved')) return false;
      return true;
    },
  }));
}
export function handEvaluate(rules: HandRule[], q: DecisionRequest): { decision: Decision; matched: string[] } {
  let decision: Decision | undefined;
  const matched: string[] = [];
  for (const r of rules) {
    if (!r.test(q)) continue;
    matched.push(r.name);
    if (decision === undefined || rank(r.decision) < rank(decision)) decision = r.decision;
  }
  return { decision: decision ?? 'DENY', matched };
}
