/**
 * Policy evaluation benchmark: the same rule sets (8, 64, 512 rules; tool/operation/environment matches and
 * CEL conditions) decided by
 *   - countersign: services/policy evaluate() on a compiled snapshot (full Evaluation result),
 *   - hand-written JS: one closure per rule, a linear scan and the most-restrictive combine (the floor),
 *   - CEL: the CEL library interpreting each rule as one pre-parsed expression, linear scan,
 *   - cedar-wasm: the rules as Cedar policies, pre-parsed (statefulIsAuthorized), decision mapped back.
 * Engines run interleaved in one process, batch by batch, so drift (JIT, GC, thermal) hits all alike.
 * Every engine must agree on every decision before anything is timed. Run: npx tsx bench/policy-eval.ts
 */
import { Environment } from '@marcbachmann/cel-js';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { DecisionRequest } from '../schemas/decision.ts';
import type { Decision } from '../schemas/decision-kind.ts';
import { evaluate } from '../services/policy/index.ts';
import { celCondition, handEvaluate, handRules, ourSnapshot, rank, requests, ruleSet, type BenchRule } from './lib/policy-eval-rules.ts';

// --- CEL, each rule interpreted --------------------------------------------------------------------
type CelRule = { name: string; decision: Decision; program: (ctx: Record<string, unknown>) => unknown };
function celRules(rules: BenchRule[]): CelRule[] {
  const env = new Environment({ unlistedVariablesAreDyn: true });
  return rules.map((r) => {
    const parts = [`action.tool == "${r.tool}"`, `action.operation == "${r.op}"`];
    if (r.env !== undefined) parts.push(`environment == "${r.env}"`);
    const cond = celCondition(r);
    if (cond !== undefined) parts.push(`(${cond})`);
    return { name: r.name, decision: r.decision, program: env.parse(parts.join(' && ')) as (ctx: Record<string, unknown>) => unknown };
  });
}
function celEvaluate(rules: CelRule[], q: DecisionRequest): { decision: Decision; matched: string[] } {
  const vars = { ...q.context, action: q.action };
  let decision: Decision | undefined;
  const matched: string[] = [];
  for (const r of rules) {
    if (r.program(vars) !== true) continue;
    matched.push(r.name);
    if (decision === undefined || rank(r.decision) < rank(decision)) decision = r.decision;
  }
  return { decision: decision ?? 'DENY', matched };
}

// --- cedar-wasm --------------------------------------------------------------------------------------
function cedarPolicySet(id: string, rules: BenchRule[]): Map<string, BenchRule> {
  const byId = new Map<string, BenchRule>();
  const policies: Record<string, string> = {};
  for (const r of rules) {
      byId.set(r.name, r);
      const conds: string[] = [];
      if (r.env !== undefined) conds.push(`context.environment == "${r.env}"`);
      if (r.threshold !== undefined) conds.push(`context.amount > ${r.threshold} && context.vendor_status == "approved"`);
      // Cedar has permit and forbid only; every rule is a permit here and its decision is mapped back from
      // the determining policy ids, which is what an integration would have to do for REQUIRE_APPROVAL.
      policies[r.name] = `permit(principal, action == Action::"${r.tool}/${r.op}", resource)${conds.length ? ` when { ${conds.join(' && ')} }` : ''};`;
  }
  const parsed = cedar.preparsePolicySet(id, { staticPolicies: policies });
  if (parsed.type !== 'success') throw new Error(JSON.stringify(parsed.errors));
  return byId;
}
function cedarEvaluate(id: string, byId: Map<string, BenchRule>, q: DecisionRequest): { decision: Decision; matched: string[] } {
  const c = q.context as { environment: string; amount: number; vendor_status: string };
  const answer = cedar.statefulIsAuthorized({
    principal: { type: 'Agent', id: q.agent.id },
    action: { type: 'Action', id: `${q.action.tool}/${q.action.operation ?? ''}` },
    resource: { type: 'Tool', id: q.action.tool },
    context: { environment: c.environment, amount: c.amount, vendor_status: c.vendor_status },
    preparsedPolicySetId: id,
    entities: [],
  });
  if (answer.type !== 'success') throw new Error(JSON.stringify(answer.errors));
  // A plain loop, not Array#sort with a callback: that combination with wasm frames crashed V8 12.x's
  // deoptimizer here (a fatal "unreachable code"), so the order is restored by rule number by hand.
  const matched: string[] = [];
  for (const id of answer.response.diagnostics.reason) {
    let at = matched.length;
    while (at > 0 && Number(matched[at - 1]!.slice(1)) > Number(id.slice(1))) at--;
    matched.splice(at, 0, id);
  }
  let decision: Decision | undefined;
  for (const m of matched) {
    const d = byId.get(m)!.decision;
    if (decision === undefined || rank(d) < rank(decision)) decision = d;
  }
  return { decision: decision ?? 'DENY', matched };
}

// --- timing ------------------------------------------------------------------------------------------

type Engine = { name: string; run: (q: DecisionRequest) => Decision };

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function bench(n: number): void {
  const rules = ruleSet(n);
  const qs = requests(n, 256);
  const now = new Date('2025-01-08T12:00:00Z');
  const snapshot = ourSnapshot(rules);
  const hand = handRules(rules);
  const cel = celRules(rules);
  const cedarId = `bench-${n}`;
  const cedarRules = cedarPolicySet(cedarId, rules);
  const all: Engine[] = [
    { name: 'countersign', run: (q) => evaluate(snapshot, q, {}, now).decision },
    { name: 'hand-written JS', run: (q) => handEvaluate(hand, q).decision },
    { name: 'CEL per rule', run: (q) => celEvaluate(cel, q).decision },
    { name: 'cedar-wasm', run: (q) => cedarEvaluate(cedarId, cedarRules, q).decision },
  ];
  // BENCH_ENGINES=countersign,cedar-wasm narrows the run (countersign is always kept: ratios are against it).
  const only = process.env['BENCH_ENGINES']?.split(',');
  const engines = only === undefined ? all : all.filter((e) => e.name === 'countersign' || only.includes(e.name));
  // Agreement first: a faster engine that decides differently is not a comparison.
  for (const q of qs) {
    const ours = evaluate(snapshot, q, {}, now);
    const h = handEvaluate(hand, q);
    const c = celEvaluate(cel, q);
    const d = cedarEvaluate(cedarId, cedarRules, q);
    const names = ours.matched_rules.map((m) => m.rule).join(',');
    if (ours.decision !== h.decision || h.decision !== c.decision || c.decision !== d.decision || names !== h.matched.join(',') || names !== c.matched.join(',') || names !== d.matched.join(','))
      throw new Error(`engines disagree on ${JSON.stringify(q)}: ${ours.decision}/${h.decision}/${c.decision}/${d.decision} ${names} | ${h.matched.join(',')} | ${d.matched.join(',')}`);
  }
  const batch = 64;
  const rounds = 400;
  const samples = new Map<string, number[]>(engines.map((e) => [e.name, []]));
  let sink = 0;
  for (let round = -50; round < rounds; round++) {
    const start = (round * 37) & 255;
    // Rotate the engine order each round so none always runs first after a GC.
    for (let k = 0; k < engines.length; k++) {
      const e = engines[(k + round + 50) % engines.length]!;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < batch; i++) sink += e.run(qs[(start + i) & 255]!).length;
      const ns = Number(process.hrtime.bigint() - t0) / batch;
      if (round >= 0) samples.get(e.name)!.push(ns);
    }
  }
  if (sink === 0) console.log('');
  const stats = new Map([...samples].map(([name, s]) => {
    const sorted = [...s].sort((a, b) => a - b);
    return [name, { median: percentile(sorted, 50), p99: percentile(sorted, 99) }];
  }));
  const ours = stats.get('countersign')!;
  console.log(`\n${n} rules (${qs.length} requests, ${rounds} interleaved batches of ${batch}; ns per evaluation)`);
  console.log(`  ${'engine'.padEnd(16)} ${'median'.padStart(10)} ${'p99'.padStart(10)}   countersign / engine (median, p99)`);
  for (const [name, s] of stats) {
    const ratio = name === 'countersign' ? '' : `${(ours.median / s.median).toFixed(2)}x, ${(ours.p99 / s.p99).toFixed(2)}x`;
    console.log(`  ${name.padEnd(16)} ${s.median.toFixed(0).padStart(10)} ${s.p99.toFixed(0).padStart(10)}   ${ratio}`);
  }
}

console.log(`policy evaluation benchmark: node ${process.version}, cedar ${cedar.getCedarVersion()}`);
// BENCH_RULES=64 runs one size only.
for (const n of process.env['BENCH_RULES'] ? process.env['BENCH_RULES'].split(',').map(Number) : [8, 64, 512]) bench(n);
