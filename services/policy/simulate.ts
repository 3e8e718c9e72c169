import { z } from 'zod';
import { catalogFact, type CatalogState } from './tool-catalog.ts';
import type { Facts } from './counters.ts';
import type { Decision } from '../../schemas/decision-kind.ts';
import { DecisionRequest, type Evaluation } from '../../schemas/decision.ts';
import { circuitBreakerPack } from './builtin-pack.ts';
import { assembleSnapshot, compile } from './compile.ts';
import { compileDocument, zodIssues } from './compile-document.ts';
import { evaluate } from './evaluate.ts';
import { celCostEstimate, compileCel } from './cel.ts';
import { CEL_EVALUATION_BUDGET } from './cel-budget.ts';
import { celVariables } from './check-rule.ts';
import { perCallRuleIssues } from './per-call-rules.ts';
import { interpretations, type Interpretation } from './interpret.ts';
import { formatPath, type PolicyError } from './policy-error.ts';
import type { CompiledPolicy, Snapshot } from './snapshot.ts';

/**
 * Simulation: the decision a request would get, without starting anything. Used by
 * `POST /v1/policy/simulate` and `countersign policy simulate`. With a draft policy, the draft replaces
 * the active version of the same policy id in the active set (or stands alone when there is none).
 */
const ENVIRONMENT_TAGS = new Set(['prod', 'production', 'staging', 'dev', 'development', 'test']);

/** A job in the Safety-Kernel vocabulary (seed 002): topic, capability and risk tags. */
export const Job = z.strictObject({
  topic: z.string().min(1).max(200).optional(),
  capability: z.string().min(1).max(200).optional(),
  tool: z.string().min(1).max(200).optional(),
  operation: z.string().min(1).max(200).optional(),
  agent: z.string().min(1).max(200).optional(),
  environment: z.string().min(1).max(200).optional(),
  risk_tags: z.array(z.string().min(1).max(200)).max(64).optional(),
  context: z.record(z.string(), z.unknown()).optional(),
});
export type Job = z.infer<typeof Job>;

/**
 * A job as a decision request. The job's tool is its `tool`, else its capability, else its topic. Jobs
 * carry the environment as a risk tag (`["prod", "write"]`), so the first environment-named tag becomes
 * `context.environment` unless the job names one; all tags stay risk tags.
 */
export function requestFromJob(job: Job): DecisionRequest {
  const tags = job.risk_tags ?? [];
  const env = job.environment ?? tags.find((t) => ENVIRONMENT_TAGS.has(t));
  const tool = job.tool ?? job.capability ?? job.topic ?? 'unknown';
  return DecisionRequest.parse({
    agent: { id: job.agent ?? 'simulation' },
    action: {
      tool,
      ...(job.operation !== undefined ? { operation: job.operation } : {}),
      ...(job.topic !== undefined ? { topic: job.topic } : {}),
      ...(job.capability !== undefined ? { capability: job.capability } : {}),
    },
    context: { ...job.context, ...(env !== undefined ? { environment: env === 'production' ? 'prod' : env } : {}), ...(tags.length > 0 ? { risk_tags: tags } : {}) },
  });
}

export const SimulateBody = z
  .strictObject({
    request: z.unknown().optional(),
    job: Job.optional(),
    policy: z.unknown().optional().describe('A draft policy document (or a list of them) to simulate instead of the active version.'),
    at: z.iso.datetime({ offset: true }).optional().describe('Evaluate as of this instant instead of now.'),
    facts: z.record(z.string(), z.unknown()).optional().describe('Counter values for limit rules: { counters: { key: n } }.'),
    tenant_id: z.string().optional().describe('Accepted for compatibility; the tenant is the caller\'s.'),
  })
  .refine((b) => (b.request === undefined) !== (b.job === undefined), { message: 'give exactly one of request or job' });
export type SimulateBody = z.infer<typeof SimulateBody>;

export type SimulationResult = Evaluation & { status: 'final' | 'pending_approval'; interpreted?: Interpretation[] };
/** `unprocessable`: the body is well formed but asks for what cannot be done (a loosening per-call rule, a rule over the CEL budget). */
export type SimulateOutcome = { ok: true; result: SimulationResult; snapshot: Snapshot } | { ok: false; errors: PolicyError[]; unprocessable?: true };

/** Draft rules whose condition cannot run within the CEL budget with this request's values, each with its path. */
function overBudget(drafts: CompiledPolicy[], request: DecisionRequest, now: Date, path: (i: number) => Array<string | number>): PolicyError[] {
  const errors: PolicyError[] = [];
  let vars: Record<string, unknown> | undefined;
  drafts.forEach((d, i) => d.rules.forEach((rule, j) => {
    if (rule.condition === undefined || rule.on === 'outcome') return;
    const c = compileCel(rule.condition);
    if (!c.ok) return;
    const cost = celCostEstimate(c.program, (vars ??= celVariables(request, now)));
    if (cost !== undefined && cost > CEL_EVALUATION_BUDGET) {
      errors.push({ path: formatPath([...path(i), 'rules', j, 'condition']), message: `the condition of rule ${rule.name} cannot be run within the CEL cost budget of an evaluation: its estimated cost with this request's values is ${cost} units, over ${CEL_EVALUATION_BUDGET}` });
    }
  }));
  return errors;
}

/** Replaces (or adds) drafts in an active snapshot and rehashes it. */
export function withDrafts(active: Snapshot | undefined, drafts: CompiledPolicy[], defaultDecision: Decision): Snapshot {
  // A draft stands in for the active version of its own policy: a platform policy and a tenant's may share an id.
  const key = (p: CompiledPolicy) => `${p.level === 'platform' ? 'platform' : 'tenant'}/${p.policy_id}`;
  const ids = new Set(drafts.map(key));
  const base = active?.policies ?? [circuitBreakerPack()];
  return assembleSnapshot([...base.filter((p) => !ids.has(key(p))), ...drafts], active?.default_decision ?? defaultDecision);
}

/**
 * The decision a request would get, without starting anything. With `catalog` (the tenant's tool catalog, as
 * the decision path consults it) the request gets the catalog's risk tags, unless the body's facts already
 * say what the catalog gave (`facts.tool_catalog`).
 */
export function simulate(input: { body: unknown; active?: Snapshot; now: Date; defaultDecision?: Decision; catalog?: CatalogState }): SimulateOutcome {
  const parsed = SimulateBody.safeParse(input.body, { reportInput: true });
  if (!parsed.success) return { ok: false, errors: zodIssues(parsed.error.issues).map((i) => ({ path: formatPath(i.path), message: i.message })) };
  const body = parsed.data;
  let request: DecisionRequest;
  if (body.job !== undefined) request = requestFromJob(body.job);
  else {
    const r = DecisionRequest.safeParse(body.request, { reportInput: true });
    if (!r.success) return { ok: false, errors: zodIssues(r.error.issues).map((i) => ({ path: formatPath(['request', ...i.path]), message: i.message })) };
    request = r.data;
  }
  const now = body.at !== undefined ? new Date(body.at) : input.now;
  const refused = perCallRuleIssues(request, now);
  if (refused.length > 0) return { ok: false, errors: refused.map((i) => ({ path: formatPath(['request', ...i.path]), message: i.message })), unprocessable: true };
  let snapshot: Snapshot;
  const interpreted: Interpretation[] = [];
  if (body.policy !== undefined) {
    const docs = Array.isArray(body.policy) ? body.policy : [body.policy];
    const drafts: CompiledPolicy[] = [];
    const errors: PolicyError[] = [];
    docs.forEach((doc, i) => {
      const c = compileDocument(doc, 0);
      if (!c.ok) for (const e of c.issues) errors.push({ path: formatPath(Array.isArray(body.policy) ? ['policy', i, ...e.path] : ['policy', ...e.path]), message: e.message });
      else {
        drafts.push(c.policy);
        interpreted.push(...interpretations(c.policy));
      }
    });
    if (errors.length > 0) return { ok: false, errors };
    const costly = overBudget(drafts, request, now, (i) => (Array.isArray(body.policy) ? ['policy', i] : ['policy']));
    if (costly.length > 0) return { ok: false, errors: costly, unprocessable: true };
    snapshot = withDrafts(input.active, drafts, input.defaultDecision ?? 'DENY');
  } else if (input.active !== undefined) snapshot = input.active;
  else {
    const c = compile([], input.defaultDecision !== undefined ? { defaultDecision: input.defaultDecision } : {});
    if (!c.ok) return c;
    snapshot = c.snapshot;
  }
  const facts: Facts = { ...(body.facts ?? {}) };
  if (input.catalog !== undefined && input.catalog.version > 0 && facts.tool_catalog === undefined) facts.tool_catalog = catalogFact(input.catalog, request);
  const evaluation = evaluate(snapshot, request, facts, now);
  const result: SimulationResult = { ...evaluation, status: evaluation.decision === 'REQUIRE_APPROVAL' ? 'pending_approval' : 'final' };
  if (interpreted.length > 0) result.interpreted = interpreted;
  return { ok: true, result, snapshot };
}
