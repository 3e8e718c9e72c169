import { z } from 'zod';
import { Decision } from './decision-kind.ts';
import { Constraints } from './constraints.ts';
import { Duration } from './duration.ts';

/**
 * Policy documents (contract v1). Every object is strict: an unknown field is an error, because a
 * misspelt `condtion` that is silently ignored turns a guard into an allow.
 */

const Name = z.string().min(1).max(200);
export const RuleName = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'rule names may contain letters, digits and . _ : - (and start with a letter or digit)');

/** A glob: `*` matches any run of characters; nothing else is special, so matching is linear and never backtracks. */
export const Glob = z.string().min(1).max(200).describe('A value or a glob where * matches any run of characters.');
const GlobOrList = z.union([Glob, z.array(Glob).min(1).max(100)], { error: 'expected a string or a non-empty list of strings (at most 100, each at most 200 characters)' });
const ValueOrList = z.union([Name, z.array(Name).min(1).max(100)], { error: 'expected a string or a non-empty list of strings (at most 100, each at most 200 characters)' });

export const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
export const Weekday = z.enum(WEEKDAYS);
export type Weekday = z.infer<typeof Weekday>;
const ClockTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected a 24-hour time HH:MM, e.g. 17:00');

/** True when the runtime knows the IANA zone. Intl is pure here: it reads the bundled tz database, not the clock. */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
export const TimeZone = z.string().min(1).max(64).refine(isTimeZone, { message: 'unknown IANA time zone (e.g. America/New_York, Europe/Berlin, UTC)' });

export const TimeWindow = z
  .strictObject({
    days: z.array(Weekday).min(1).max(7).optional().describe('Local days of the week; any of them.'),
    after: ClockTime.optional().describe('Local time at or after which the window is open.'),
    before: ClockTime.optional().describe('Local time before which the window is open. With after > before the window wraps midnight.'),
    timezone: TimeZone.default('UTC').describe('IANA time zone the days and times are read in; default UTC.'),
  })
  .refine((w) => w.days !== undefined || w.after !== undefined || w.before !== undefined, {
    message: 'a time window needs at least one of days, after, before',
  });
export type TimeWindow = z.infer<typeof TimeWindow>;

export const Match = z
  .strictObject({
    tool: GlobOrList.optional(),
    operation: GlobOrList.optional(),
    topic: GlobOrList.optional(),
    capability: GlobOrList.optional(),
    environment: ValueOrList.optional(),
    risk_tags: z.array(Name).min(1).max(64).optional().describe('The request must carry all of these tags.'),
    agent: GlobOrList.optional().describe('Agent id or glob.'),
    model: z.strictObject({ provider: ValueOrList.optional(), model: ValueOrList.optional() }).optional(),
    time: TimeWindow.optional(),
  })
  .describe('Every key must hold; a list means any of its values (all of them for risk_tags).');
export type Match = z.infer<typeof Match>;

export const Limit = z
  .strictObject({
    kind: z.enum(['rate', 'cost']).describe('rate counts matching requests; cost sums a context field.'),
    max: z.number().nonnegative().max(1e15),
    window: Duration,
    per: z.enum(['agent', 'tenant']).default('agent'),
    field: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'field must be a context field name').optional().describe('Context field summed by a cost limit.'),
  })
  .superRefine((l, ctx) => {
    if (l.kind === 'cost' && l.field === undefined) ctx.addIssue({ code: 'custom', path: ['field'], message: 'a cost limit needs field: the context field to sum (e.g. amount)' });
    if (l.kind === 'rate' && l.field !== undefined) ctx.addIssue({ code: 'custom', path: ['field'], message: 'a rate limit counts requests; field is only for cost limits' });
  });
export type Limit = z.infer<typeof Limit>;

/** One level of an escalation ladder: who is asked, how many must approve, and how long the level waits. */
export const ApprovalLevel = z.strictObject({
  approvers: z.array(Name).min(1).max(20).describe('Approver groups added at this level; the groups of earlier levels may still answer.'),
  quorum: z.number().int().min(1).max(20).optional().describe('Approvals the requirement needs while at this level (default 1); approvals given at earlier levels count.'),
  timeout: Duration.optional().describe('How long this level waits before the next level (or, after the last, the fallback); default: the tenant setting approval_timeout, else 1h.'),
});
export type ApprovalLevel = z.infer<typeof ApprovalLevel>;

export const MAX_APPROVAL_LEVELS = 10;

/**
 * Who approves a REQUIRE_APPROVAL rule. Either the single-level form (approvers, quorum, timeout, optionally
 * escalate_to/escalate_after), or an escalation ladder (`levels`), never both.
 */
export const Approval = z.strictObject({
  approvers: z.array(Name).min(1).max(20).optional().describe('Approver groups; any member may answer. Required unless levels is given.'),
  quorum: z.number().int().min(1).max(20).optional().describe('Approvals needed; default 1.'),
  timeout: Duration.optional().describe('How long the round waits (after an escalation, the escalated level waits as long again); default: the tenant setting approval_timeout, else 1h.'),
  escalate_to: z.array(Name).min(1).max(20).optional().describe('Groups notified when escalate_after passes without a quorum.'),
  escalate_after: Duration.optional(),
  levels: z.array(ApprovalLevel).min(1).max(MAX_APPROVAL_LEVELS).optional()
    .describe('An escalation ladder: each level in turn, with its groups, quorum and timeout; after the last level\'s timeout, on_timeout.'),
  on_timeout: z.enum(['DENY', 'ALLOW']).default('DENY').describe('Fallback decision when the timeout passes.'),
  allow_edits: z
    .boolean()
    .optional()
    .describe('Whether an approver may approve changed arguments (re-evaluated against the run\'s snapshot, counted only when no looser). Default true; false forbids edits.'),
}).superRefine((a, ctx) => {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  if (a.levels === undefined) {
    if (a.approvers === undefined) issue('approvers', 'an approval block needs approvers (or levels: an escalation ladder)');
    return;
  }
  for (const k of ['approvers', 'quorum', 'timeout', 'escalate_to', 'escalate_after'] as const) {
    if (a[k] !== undefined) issue(k, `${k} is not allowed beside levels: each level names its own approvers, quorum and timeout, and the next level is the escalation`);
  }
});
export type Approval = z.infer<typeof Approval>;

/** Another product's vocabulary for decisions (seed 000). */
export const EFFECTS = { require_human_approval: 'REQUIRE_APPROVAL', auto_approve: 'ALLOW', deny: 'DENY' } as const;
export const Effect = z.enum(['require_human_approval', 'auto_approve', 'deny']);

const CelText = z.string().min(1).max(4096);

/**
 * One rule. Four written forms share this object (checked by the refinement below):
 * - structured: `match`/`condition`/`limit` + `decision`;
 * - natural language: `text` (optionally `decision`/`effect` to confirm it);
 * - imported effect form: `{ condition: "<sentence>", effect }` (seed 000), the condition being natural language;
 * - imported deterministic form: `{ type: deterministic, expr }` (seed 003): the request must satisfy expr.
 */
export const PolicyRule = z
  .strictObject({
    name: RuleName.optional(),
    description: z.string().max(2000).optional(),
    on: z.enum(['request', 'outcome']).default('request').describe('outcome rules check what the tool returned.'),
    match: Match.optional(),
    condition: CelText.optional(),
    limit: Limit.optional(),
    decision: Decision.optional(),
    effect: Effect.optional(),
    reason: z.string().min(1).max(1000).optional(),
    constraints: Constraints.optional(),
    approval: Approval.optional(),
    text: z.string().min(1).max(1000).optional().describe('A natural-language rule, compiled when the policy is saved.'),
    applies_to: Match.optional().describe('For a type: nl rule that needs judgment: the requests it applies to (default: every request of its policy).'),
    type: z.enum(['deterministic', 'nl']).optional(),
    expr: CelText.optional(),
  })
  .superRefine((r, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (r.decision !== undefined && r.effect !== undefined) issue('effect', 'give decision or effect, not both');
    if (r.type === 'deterministic') {
      if (r.expr === undefined) issue('expr', 'a deterministic rule needs expr: a CEL expression the request must satisfy');
      for (const k of ['text', 'match', 'condition', 'limit', 'decision', 'effect', 'constraints', 'applies_to'] as const) if (r[k] !== undefined) issue(k, `${k} is not allowed in a deterministic rule: it is a requirement; the policy's on_fail says what a failed one decides`);
      if (r.on === 'outcome') issue('on', 'a deterministic rule is a requirement on the request, not on the outcome');
      return;
    }
    if (r.expr !== undefined) issue('expr', 'expr belongs to type: deterministic rules');
    if (r.type === 'nl' && r.text === undefined) issue('text', 'a type: nl rule needs text');
    if (r.applies_to !== undefined && r.type !== 'nl') issue('applies_to', 'applies_to is for type: nl rules that need judgment: it says which requests their approvers check');
    if (r.text !== undefined) {
      for (const k of ['match', 'condition', 'limit'] as const) if (r[k] !== undefined) issue(k, `${k} is not allowed beside text: a natural-language rule is compiled into its own match and condition`);
      return;
    }
    if (r.effect !== undefined) {
      if (r.condition === undefined) issue('condition', 'an effect rule needs condition: the sentence it applies to');
      for (const k of ['match', 'limit'] as const) if (r[k] !== undefined) issue(k, `${k} is not allowed in an effect rule; write a structured rule with decision instead`);
      return;
    }
    if (r.decision === undefined) issue('decision', 'a rule needs decision: ALLOW, DENY, REQUIRE_APPROVAL or ALLOW_WITH_CONSTRAINTS');
    if (r.approval !== undefined && r.decision !== undefined && r.decision !== 'REQUIRE_APPROVAL') issue('approval', 'approval is only for REQUIRE_APPROVAL rules');
    if (r.on === 'outcome' && r.limit !== undefined) issue('limit', 'outcome rules cannot have limits');
  });
export type PolicyRule = z.infer<typeof PolicyRule>;
export type PolicyRuleInput = z.input<typeof PolicyRule>;

const NameList = z.array(Name).max(1000);
const GlobList = z.array(Glob).max(1000);

export const ModelLists = z.strictObject({
  allowed_providers: NameList.optional().describe('Empty or absent: no provider allow-list.'),
  denied_providers: NameList.optional(),
  allowed_models: NameList.optional().describe('Empty or absent: every model of an allowed provider.'),
  denied_models: NameList.optional(),
});
export type ModelLists = z.infer<typeof ModelLists>;

export const ToolLists = z.strictObject({
  allowed: GlobList.optional().describe('Empty or absent: no allow-list. A tool on it is allowed (rule tools.allowed).'),
  denied: GlobList.optional(),
  require_approval: GlobList.optional(),
  approval: Approval.optional().describe('Approval block used for tools on require_approval.'),
});
export type ToolLists = z.infer<typeof ToolLists>;

export const PolicyId = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'policy ids may contain letters, digits and . _ - (and start with a letter or digit)');

export const PolicyScope = z
  .strictObject({
    level: z.enum(['platform', 'tenant', 'agent']),
    agent: z.string().min(1).max(200).optional(),
  })
  .superRefine((s, ctx) => {
    if (s.level === 'agent' && s.agent === undefined) ctx.addIssue({ code: 'custom', path: ['agent'], message: 'an agent-scoped policy needs agent: <agent id>' });
    if (s.level !== 'agent' && s.agent !== undefined) ctx.addIssue({ code: 'custom', path: ['agent'], message: 'agent is only for level: agent' });
  });
export type PolicyScope = z.infer<typeof PolicyScope>;

export const PolicyMetadata = z.strictObject({
  id: PolicyId,
  name: Name.optional(),
  domain: Name.optional(),
  description: z.string().max(5000).optional(),
  labels: z.record(z.string().max(100), z.string().max(500)).optional(),
  compliance: z.strictObject({ frameworks: z.array(Name).max(50).optional(), require_audit_logging: z.boolean().optional() }).optional(),
});

export const MAX_RULES_PER_POLICY = 2000;

/**
 * Who may lift this policy's DENYs and for how long. Each field, when given, wins over the tenant's setting
 * (override_groups, override_timeout, override_window), which wins over the deployment's
 * (COUNTERSIGN_OVERRIDE_GROUPS, _TIMEOUT, _WINDOW). Applies to runs whose deciding rule is this policy's.
 */
export const OverrideSettings = z.strictObject({
  groups: z.array(Name).min(1).max(20).optional().describe('Approver groups that decide override requests of DENYs by this policy.'),
  timeout: Duration.optional().describe('How long an override request waits for an answer before it is denied.'),
  window: Duration.optional().describe('How long after a DENY the agent may ask for an override.'),
});
export type OverrideSettings = z.infer<typeof OverrideSettings>;

export const PolicyDocument = z.strictObject({
  apiVersion: z.literal('countersign/v1', { error: 'apiVersion must be countersign/v1' }),
  kind: z.literal('Policy', { error: 'kind must be Policy' }),
  metadata: PolicyMetadata,
  scope: PolicyScope.default({ level: 'tenant' }),
  default_decision: Decision.optional().describe('Refused: the decision when nothing matches is the tenant setting default_decision (PATCH /v1/tenants/{id}).'),
  on_fail: z.enum(['DENY', 'REQUIRE_APPROVAL']).optional().describe('What a failed requirement (a type: deterministic rule) decides; DENY unless set. With REQUIRE_APPROVAL a requirement may carry an approval block.'),
  models: ModelLists.optional(),
  tools: ToolLists.optional(),
  override: OverrideSettings.optional().describe("Override settings for DENYs this policy's rules decide (groups, timeout, window); absent: the tenant's, then the deployment's."),
  rules: z.array(PolicyRule).max(MAX_RULES_PER_POLICY).default([]),
});
export type PolicyDocument = z.infer<typeof PolicyDocument>;
export type PolicyDocumentInput = z.input<typeof PolicyDocument>;

/**
 * How a saved natural-language rule reads back (`interpreted` in the answers of POST/PUT /v1/policies and of
 * simulation): either the structured rule its sentence compiled to, or a judgment rule that people enforce.
 */
export const JudgmentReading = z.strictObject({
  kind: z.literal('judgment'),
  checklist: z.string().describe("The sentence as written: what the approvers (or the tenant's evaluator) check."),
  applies_to: z.record(z.string(), z.unknown()).describe('The compiled match of applies_to; {} is every request of the policy.'),
  decision: z.literal('REQUIRE_APPROVAL').describe('What a request it applies to gets, unless an evaluator decides it.'),
  effect: z.enum(['DENY', 'REQUIRE_APPROVAL']).describe("What a fail verdict of the tenant's evaluator decides."),
  approval: z.record(z.string(), z.unknown()),
  enforced_by: z.literal('people, or the tenant evaluator when one is configured'),
});
export type JudgmentReading = z.infer<typeof JudgmentReading>;
