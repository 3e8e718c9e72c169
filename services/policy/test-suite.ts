import { z } from 'zod';
import { Decision } from '../../schemas/decision-kind.ts';
import { DecisionRequest, type Evaluation } from '../../schemas/decision.ts';
import { canonicalJson } from '../receipts/canonical.ts';
import { assembleSnapshot } from './compile.ts';
import { circuitBreakerPack } from './builtin-pack.ts';
import { zodIssues } from './compile-document.ts';
import { evaluate } from './evaluate.ts';
import { Outcome, evaluateOutcome } from './outcome.ts';
import { formatPath, type PolicyError } from './policy-error.ts';
import { Job, requestFromJob } from './simulate.ts';
import type { CompiledPolicy, Snapshot } from './snapshot.ts';

/**
 * Policy test suites (like `opa test`): YAML cases of request, instant, facts and expectation, run by one
 * runner that the CLI (`countersign policy test`) and the unit tests share. A case without an expectation
 * fails: a test that cannot fail proves nothing.
 */
const Expect = z.strictObject({
  decision: Decision,
  matched_rule: z.string().nullable().optional(),
  matched_rules: z.array(z.string()).optional().describe('Names of every matched rule, in order.'),
  reason_contains: z.string().optional(),
  checklist: z.array(z.string()).optional().describe("The judgment rules' sentences the approvers get as their checklist, in order ([] for none)."),
  constraints: z.record(z.string(), z.unknown()).optional(),
  approval: z.record(z.string(), z.unknown()).optional().describe('Fields the approval block must have (subset).'),
  violations: z.array(z.string()).optional().describe('For outcome cases: names of the violated output rules.'),
});

export const TestCase = z.strictObject({
  name: z.string().min(1),
  at: z.iso.datetime({ offset: true }).optional(),
  request: z.unknown().optional(),
  job: Job.optional(),
  facts: z.record(z.string(), z.unknown()).optional(),
  outcome: Outcome.optional().describe('When given, the case checks output rules (evaluateOutcome) instead.'),
  expect: Expect.optional(),
});
export type TestCase = z.infer<typeof TestCase>;

export const TestSuite = z.strictObject({
  name: z.string().optional(),
  policies: z.array(z.string()).optional().describe('Policy files, relative to the suite file.'),
  policy: z.unknown().optional().describe('Inline policy documents (one or a list).'),
  default_decision: Decision.optional(),
  circuit_breakers: z.boolean().default(true),
  at: z.iso.datetime({ offset: true }).optional().describe('Default instant for cases without at.'),
  cases: z.array(TestCase).min(1),
});
export type TestSuite = z.infer<typeof TestSuite>;

export type CaseResult = { name: string; passed: boolean; diffs: string[]; evaluation?: Evaluation };

/** Compiles a suite's policies (already compiled by the caller, who knows the files) into its snapshot. */
export function suiteSnapshot(policies: CompiledPolicy[], suite: TestSuite): Snapshot {
  return assembleSnapshot(suite.circuit_breakers ? [...policies, circuitBreakerPack()] : policies, suite.default_decision ?? 'DENY');
}

export function parseSuite(value: unknown): { ok: true; suite: TestSuite } | { ok: false; errors: PolicyError[] } {
  const r = TestSuite.safeParse(value, { reportInput: true });
  if (!r.success) return { ok: false, errors: zodIssues(r.error.issues).map((i) => ({ path: formatPath(i.path), message: i.message })) };
  return { ok: true, suite: r.data };
}

function show(v: unknown): string {
  return v === undefined ? '(absent)' : canonicalJson(v);
}

function subsetDiff(label: string, want: Record<string, unknown>, got: Record<string, unknown> | undefined, diffs: string[]): void {
  for (const [k, v] of Object.entries(want)) {
    const g = got?.[k];
    if (show(g) !== show(v)) diffs.push(`${label}.${k}:\n  - expected ${show(v)}\n  + actual   ${show(g)}`);
  }
}

export function runCase(snapshot: Snapshot, suite: TestSuite, tc: TestCase): CaseResult {
  const diffs: string[] = [];
  if (tc.expect === undefined) return { name: tc.name, passed: false, diffs: ['case has no expect: every case must state the expected decision'] };
  const at = tc.at ?? suite.at;
  if (at === undefined) return { name: tc.name, passed: false, diffs: ['case has no at (and the suite has none): the instant must be explicit'] };
  let request: DecisionRequest;
  if (tc.job !== undefined) request = requestFromJob(tc.job);
  else {
    const r = DecisionRequest.safeParse(tc.request, { reportInput: true });
    if (!r.success) return { name: tc.name, passed: false, diffs: zodIssues(r.error.issues).map((i) => `request.${formatPath(i.path)}: ${i.message}`) };
    request = r.data;
  }
  const now = new Date(at);
  const want = tc.expect;
  if (tc.outcome !== undefined) {
    const o = evaluateOutcome(snapshot, request, tc.outcome, now, tc.facts ?? {});
    if (o.decision !== want.decision) diffs.push(`decision:\n  - expected ${want.decision}\n  + actual   ${o.decision}`);
    if (want.violations !== undefined && show(o.violations.map((v) => v.rule)) !== show(want.violations))
      diffs.push(`violations:\n  - expected ${show(want.violations)}\n  + actual   ${show(o.violations.map((v) => v.rule))}`);
    return { name: tc.name, passed: diffs.length === 0, diffs };
  }
  const e = evaluate(snapshot, request, (tc.facts ?? {}), now);
  if (e.decision !== want.decision) diffs.push(`decision:\n  - expected ${want.decision}\n  + actual   ${e.decision}`);
  if (want.matched_rule !== undefined && e.matched_rule !== want.matched_rule) diffs.push(`matched_rule:\n  - expected ${show(want.matched_rule)}\n  + actual   ${show(e.matched_rule)}`);
  if (want.matched_rules !== undefined && show(e.matched_rules.map((m) => m.rule)) !== show(want.matched_rules))
    diffs.push(`matched_rules:\n  - expected ${show(want.matched_rules)}\n  + actual   ${show(e.matched_rules.map((m) => m.rule))}`);
  if (want.checklist !== undefined && show((e.judgment?.checklist ?? []).map((j) => j.text)) !== show(want.checklist))
    diffs.push(`checklist:\n  - expected ${show(want.checklist)}\n  + actual   ${show((e.judgment?.checklist ?? []).map((j) => j.text))}`);
  if (want.reason_contains !== undefined && !e.reason.includes(want.reason_contains)) diffs.push(`reason:\n  - expected to contain ${show(want.reason_contains)}\n  + actual   ${show(e.reason)}`);
  if (want.constraints !== undefined && show(e.constraints) !== show(want.constraints)) diffs.push(`constraints:\n  - expected ${show(want.constraints)}\n  + actual   ${show(e.constraints)}`);
  if (want.approval !== undefined) subsetDiff('approval', want.approval, e.approval, diffs);
  return { name: tc.name, passed: diffs.length === 0, diffs, evaluation: e };
}
