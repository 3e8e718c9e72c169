import { restrictiveness } from '../../schemas/decision-kind.ts';
import type { Constraints, DecisionRequest, Evaluation, MatchedRule } from '../../schemas/decision.ts';
import { mergeConstraints } from '../policy/merge-constraints.ts';

/**
 * Approve with edit: an approver approves changed arguments instead of the ones asked for. Pure (the decider,
 * the API and the auditor's replay share it; safe in workflow code).
 *
 * The edited request is the run's request with `action.args` replaced (and each context field that mirrors an
 * argument, same name and same value, following it: the MCP gateway sends arguments both ways). It is evaluated
 * against the run's own snapshot with the run's recorded facts and clock, and the edit counts only when that
 * evaluation is **no looser** than the run's, with the decision ranking of schemas/decision-kind.ts:
 * - the same snapshot, clock and facts (anything else is not a re-evaluation of this run);
 * - not DENY: the policy forbids the edited arguments, and an approval never lifts a DENY (an override does);
 * - not less restrictive than what was asked (REQUIRE_APPROVAL): edited arguments that a rule would ALLOW, with
 *   or without constraints, leave the rule the approvers were asked about; the agent may ask for them itself;
 * - the same approval requirements or fewer: every rule of the edited evaluation that requires approval is one
 *   the run's evaluation required (so no group this round did not ask is skipped);
 * - constraints no wider: every constraint of the run is kept and at least as tight (max_ no higher, allowed_ a
 *   subset, denied_ a superset, require_ still true); the edited evaluation may add its own.
 * The decision the agent then gets carries the edited arguments and the run's constraints merged with the edited
 * evaluation's, tightest.
 */

/** The longest edited arguments may be, in characters of JSON: they travel in a message and two events. */
export const MAX_EDITED_ARGS_CHARS = 64 * 1024;

export type EditCheck = { ok: true } | { ok: false; reason: string };

/** Whether the rule that asked for approval lets approvers change the arguments (default: yes). */
export function editsAllowed(e: Evaluation | null): boolean {
  // A round of several requirements: any rule that forbids edits forbids them for the round.
  if (e?.requirements?.some((r) => r.approval.allow_edits === false)) return false;
  return e?.approval?.allow_edits !== false;
}

/** The run's request with the approver's arguments, and the context fields that mirrored the old ones following them. */
export function editedRequest(request: DecisionRequest, args: Record<string, unknown>): DecisionRequest {
  const before = request.action.args ?? {};
  const context: Record<string, unknown> = { ...request.context };
  for (const [k, v] of Object.entries(before)) {
    if (!(k in context) || !sameJson(context[k], v)) continue;
    if (k in args) context[k] = args[k];
    else delete context[k];
  }
  return { ...request, action: { ...request.action, args }, context };
}

const key = (m: MatchedRule) => `${m.policy_id}\u0000${m.version}\u0000${m.rule}`;

/** Why the edited evaluation is looser than the run's, or ok. */
export function checkEditNoLooser(original: Evaluation, edited: Evaluation): EditCheck {
  if (edited.snapshot_hash !== original.snapshot_hash) return { ok: false, reason: 'the edited arguments were evaluated against another policy snapshot than the run\'s' };
  if (edited.now !== original.now || !sameJson(edited.facts, original.facts)) return { ok: false, reason: 'the edited arguments were evaluated with other facts or another clock than the run\'s' };
  if (edited.decision === 'DENY') {
    return { ok: false, reason: `the edited arguments are denied${edited.matched_rule ? ` by rule ${edited.matched_rule}` : ''} (${edited.reason}); an approval never lifts a DENY` };
  }
  const asked = restrictiveness(original.decision);
  const now = restrictiveness(edited.decision);
  if (now > asked) {
    return {
      ok: false,
      reason: `the edited arguments would be ${edited.decision}${edited.matched_rule ? ` by rule ${edited.matched_rule}` : ''}, looser than the ${original.decision} the approvers were asked for: approve the request as asked, or reject it and let the agent ask again`,
    };
  }
  const required = new Set(original.matched_rules.filter((m) => m.decision === 'REQUIRE_APPROVAL').map(key));
  for (const m of edited.matched_rules) {
    if (m.decision === 'REQUIRE_APPROVAL' && !required.has(key(m))) {
      return { ok: false, reason: `the edited arguments need approval by rule ${m.rule} (policy ${m.policy_id}), which this round did not ask for` };
    }
  }
  const wider = widerConstraint(original.constraints, edited.constraints);
  if (wider !== null) return { ok: false, reason: `the edited arguments get wider constraints: ${wider}` };
  return { ok: true };
}

/** The first constraint of `original` that `edited` loosens or drops, described; null when none is. */
export function widerConstraint(original: Constraints, edited: Constraints): string | null {
  for (const [k, v] of Object.entries(original)) {
    if (v === undefined) continue;
    const e: unknown = edited[k];
    if (e === undefined) return `${k} is dropped`;
    if (k.startsWith('max_')) {
      if (typeof e !== 'number' || typeof v !== 'number' || e > v) return `${k} ${JSON.stringify(e)} is above ${JSON.stringify(v)}`;
    } else if (k.startsWith('allowed_')) {
      const keep = new Set(v as string[]);
      const extra = Array.isArray(e) ? (e as string[]).find((x) => !keep.has(x)) : '(not a list)';
      if (extra !== undefined) return `${k} allows ${extra}, which the run does not`;
    } else if (k.startsWith('denied_')) {
      const has = new Set(Array.isArray(e) ? (e as string[]) : []);
      const gone = (v as string[]).find((x) => !has.has(x));
      if (gone !== undefined) return `${k} no longer denies ${gone}`;
    } else if (k.startsWith('require_')) {
      if (v === true && e !== true) return `${k} is no longer required`;
    } else if (!sameJson(e, v)) {
      return `${k} differs`;
    }
  }
  return null;
}

/** The constraints an approved edit finalises with: the run's and the edited evaluation's, tightest. */
export function editedConstraints(original: Constraints, edited: Constraints): Constraints {
  const out: Record<string, unknown> = {};
  mergeConstraints(out, original);
  mergeConstraints(out, edited);
  return out;
}

/** Structural equality of JSON values (key order aside). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => sameJson(x, bb[i]));
  }
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
