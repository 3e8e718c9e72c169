import { z } from 'zod';
import { APPROVAL_CHANNELS } from '../schemas/approval-channel.ts';

/**
 * A value built on its first use and kept: for every run of the worker, this module being shared by them
 * (workflows/preload.ts). Only for values that are the same for every run and that no run changes.
 */
export function lazily<T>(make: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= make());
}

/**
 * The messages a decision workflow accepts, as zod schemas: the validators parse with them (input may come
 * from anyone who can reach Temporal, not only the API), and the API builds its messages from the same types.
 *
 * Each built on its first use, not at import, and then kept for every run of the worker (this module is loaded
 * once per worker, like zod: workflows/preload.ts): building all three costs about 5 ms, and most runs never
 * parse a message.
 */
/** The API's attestation on every message sent into a workflow (services/decisions/attestation.ts). */
export const attestationSchema = lazily(() => z.strictObject({ issued_at: z.string(), mac: z.string() }));
/** How old an attestation may be when a workflow or the worker checks it: a message is sent within seconds. */
export const MESSAGE_MAX_AGE_MS = 5 * 60_000;
/**
 * Every attested message names the run it is for and carries a fresh nonce, both under the API's MAC: an
 * answer cannot be replayed onto another run (many runs share a round number, arguments digest and snapshot),
 * nor delivered twice to the same one.
 */
export const nonceSchema = lazily(() => z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, 'a nonce is 16 to 64 base64url characters'));
/** The envelope checks every validator makes before a message is accepted: the right run, a fresh attestation, an unseen nonce. */
export function checkEnvelope(m: { nonce: string; attestation: { issued_at: string } }, target: { claimed: string; actual: string; what: 'decision' | 'review' }, seen: ReadonlySet<string>, nowMs: number): string | null {
  if (target.claimed !== target.actual) return `the message is for another ${target.what}`;
  if (seen.has(m.nonce)) return `the message was already delivered to this ${target.what} (its nonce was used)`;
  const age = nowMs - Date.parse(m.attestation.issued_at);
  if (!(age >= -60_000 && age <= MESSAGE_MAX_AGE_MS)) return 'the attestation is stale';
  return null;
}
const channelSchema = lazily(() => z.enum(APPROVAL_CHANNELS));
/**
 * Approve with edit: the changed arguments, their digest, and their evaluation against the run's snapshot (the
 * API's, under its MAC; the decider checks it is no looser, the worker that the digest is the arguments').
 */
const editSchema = lazily(() => z.strictObject({
  args: z.record(z.string(), z.unknown()),
  args_digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  evaluation: z.strictObject({
    decision: z.enum(['DENY', 'REQUIRE_APPROVAL', 'ALLOW_WITH_CONSTRAINTS', 'ALLOW']),
    reason: z.string(),
    matched_rule: z.string().nullable(),
    matched_rules: z.array(z.strictObject({ policy_id: z.string(), version: z.number().int().nonnegative(), rule: z.string(), decision: z.enum(['DENY', 'REQUIRE_APPROVAL', 'ALLOW_WITH_CONSTRAINTS', 'ALLOW']) })).max(1000),
    constraints: z.record(z.string(), z.unknown()),
    snapshot_hash: z.string(),
    facts: z.record(z.string(), z.unknown()),
    now: z.string(),
    approval: z.record(z.string(), z.unknown()).optional(),
  }),
}));
const answerInput = lazily(() => z.strictObject({
  kind: z.literal('answer'),
  decision_id: z.string().min(1).max(200),
  nonce: nonceSchema(),
  round: z.number().int().positive(),
  verdict: z.enum(['approve', 'reject']),
  comment: z.string().max(4000).optional(),
  channel: channelSchema(),
  approver_id: z.string().min(1),
  /**
   * The approver's roles and groups as the API read them: the run decides with them, and the append that
   * writes the answer checks them against the database first (README, "An answer's identity").
   */
  approver_roles: z.array(z.string().max(200)).max(50),
  approver_groups: z.array(z.string().max(200)).max(500),
  tenant_id: z.string().min(1),
  args_digest: z.string().nullable(),
  snapshot_hash: z.string(),
  edit: editSchema().optional(),
  attestation: attestationSchema(),
}));
const overrideInput = lazily(() => z.strictObject({
  kind: z.literal('override'),
  decision_id: z.string().min(1).max(200),
  nonce: nonceSchema(),
  requested_by: z.string().min(1),
  requester_roles: z.array(z.string()),
  tenant_id: z.string().min(1),
  justification: z.string().trim().min(1, 'an override needs a justification').max(4000),
  attestation: attestationSchema(),
}));
const outcomeInput = lazily(() => z.strictObject({
  kind: z.literal('outcome'),
  decision_id: z.string().min(1).max(200),
  nonce: nonceSchema(),
  reported_by: z.string().min(1),
  tenant_id: z.string().min(1),
  status: z.enum(['succeeded', 'failed']),
  output_digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  violations: z.array(z.strictObject({ policy_id: z.string(), rule: z.string(), reason: z.string() })).max(100),
  attestation: attestationSchema(),
}));
type Schemas = { AnswerInput: ReturnType<typeof answerInput>; OverrideInput: ReturnType<typeof overrideInput>; OutcomeInput: ReturnType<typeof outcomeInput> };

/** The message schemas; each is built when its property is first read. */
export const messageSchemas = lazily((): Schemas => ({
  get AnswerInput() { return answerInput(); },
  get OverrideInput() { return overrideInput(); },
  get OutcomeInput() { return outcomeInput(); },
}));

export type AnswerInput = z.infer<Schemas['AnswerInput']>;
export type OverrideInput = z.infer<Schemas['OverrideInput']>;
export type OutcomeInput = z.infer<Schemas['OutcomeInput']>;

/** Parses or throws an Error whose message names the first bad field (what the caller sees). */
export function parseMessage<T>(schema: z.ZodType<T>, value: unknown): T {
  // Without zod's compiled fast path: compiling it (new Function) costs a run more than its one or two parses.
  const r = schema.safeParse(value, { jitless: true });
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`invalid message: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  return r.data;
}
