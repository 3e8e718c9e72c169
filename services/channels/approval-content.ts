import type { HistoryEntry } from '../decisions/agent-history.ts';
import type { RoundFacts } from './facts.ts';
import type { ReviewFacts } from './review-facts.ts';
import { keyArguments } from './untrusted-text.ts';

/**
 * What an approval message says, for every channel: one builder, so Slack and email show the same facts, the
 * same approver context and the same checklist. Values are raw here; each channel escapes them as it renders
 * (services/channels/untrusted-text.ts): `facts` are Countersign's own (ids, rule names, deadlines it produced),
 * everything else was written by someone else (the policy's author or the agent) and is shown as inert text.
 */
export type Line = { label: string; value: string };

export type ApprovalContent = {
  /** Countersign's facts about the round or review. */
  facts: Line[];
  /** The constraints that will apply once approved (policy values). */
  constraints: Line[];
  /** The agent's last decisions for the same tool, newest first: the operation the agent wrote, and Countersign's record of the rest. */
  history: Array<{ operation: string; fact: string }>;
  /** The judgment rules the approver checks before answering (policy text). */
  checklist: string[];
  /** Written by the agent: tool, operation, arguments, justification. */
  agent: Line[];
  /** Written by the approver who first approved with an edit: the arguments every further approval must approve. */
  edited: Line[];
};

/** Most history entries and constraints one message shows (GET /v1/approvals has them all). */
export const CONTEXT_MAX_LINES = 8;

/** One earlier decision: what the agent asked (its text), and when, what it got, how it ended (Countersign's record). */
export function historyLine(h: HistoryEntry): { operation: string; fact: string } {
  const decision = h.decision === null ? 'still pending' : `${h.decision}${h.finalized_via ? ` (${h.finalized_via})` : ''}`;
  const outcome = h.outcome === null ? 'no outcome reported' : `outcome ${h.outcome}`;
  // Without the decision id: a message names one decision only (mail filters and searches find it by its id).
  return { operation: h.operation ?? '(no operation)', fact: `${decision}, ${outcome}, asked ${h.asked_at.slice(0, 16).replace('T', ' ')}Z` };
}

const constraintValue = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? 'null');

/** The content of an approval (or override) round's message. */
export function roundContent(f: RoundFacts): ApprovalContent {
  const constraints = Object.entries(f.constraints ?? {}).filter(([, v]) => v !== undefined);
  return {
    facts: [
      { label: 'Decision', value: `${f.decision_id} (round ${f.round}${f.kind === 'override' ? ', override' : ''})` },
      { label: 'Deadline', value: f.deadline },
      { label: 'Rule', value: f.matched_rule ?? 'none' },
      { label: 'Policy version', value: f.policies.map((p) => `${p.policy_id} v${p.version}`).join(', ') || 'none' },
      { label: 'Reason', value: f.untrusted.reason },
      { label: 'Agent', value: f.agent_id },
      ...(f.requirements ?? []).map((line, i) => ({ label: `Requirement ${i + 1} (each must approve)`, value: line })),
    ],
    constraints: [
      ...constraints.slice(0, CONTEXT_MAX_LINES).map(([k, v]) => ({ label: k, value: constraintValue(v) })),
      ...(constraints.length > CONTEXT_MAX_LINES ? [{ label: '…', value: `${constraints.length - CONTEXT_MAX_LINES} more (see GET /v1/approvals)` }] : []),
    ],
    history: (f.history ?? []).slice(0, CONTEXT_MAX_LINES).map(historyLine),
    checklist: (f.checklist ?? []).map((j) => `${j.text} (rule ${j.rule}, ${j.policy_id} v${j.version})`),
    agent: [
      { label: 'tool', value: f.untrusted.tool },
      ...(f.untrusted.operation ? [{ label: 'operation', value: f.untrusted.operation }] : []),
      ...keyArguments(f.untrusted.args).map(([k, v]) => ({ label: `argument ${k}`, value: v })),
      ...(f.untrusted.justification ? [{ label: 'justification', value: f.untrusted.justification }] : []),
    ],
    edited: f.edited_args === undefined ? [] : keyArguments(f.edited_args).map(([k, v]) => ({ label: `argument ${k}`, value: v })),
  };
}

/** The heading of the edited arguments a round is being approved with, on every channel. */
export const EDITED_HEADING = (by: string | null | undefined) =>
  `Being approved with edited arguments${by ? ` (edited by ${by})` : ''}: approve these with Approve with edit, or reject`;

/** The headings each channel gives the approver context, so both say the same. */
export const CONTEXT_HEADINGS = {
  constraints: 'Constraints that will apply once approved',
  noConstraints: 'No constraints will apply once approved.',
  history: (agent: string) => `Recent decisions of ${agent} for this tool (newest first)`,
  noHistory: 'No earlier decisions of this agent for this tool.',
} as const;

/** What a review stands for, in words. */
export function changeText(r: ReviewFacts): string {
  const c = r.change;
  switch (c.kind) {
    case 'activate': return `activate ${r.policy_id} v${r.version}`;
    case 'rollback': return `roll ${r.policy_id} back to v${c.to_version}`;
    case 'deprecate': return `deprecate ${r.policy_id} v${c.version}`;
    case 'bind': return `bind agent ${c.agent_id} to ${r.policy_id}`;
    case 'unbind': return `unbind agent ${c.agent_id} from ${r.policy_id}`;
  }
}

/** The content of a four-eyes review's message: Countersign's record of the change, nothing an agent wrote. */
export function reviewContent(r: ReviewFacts): ApprovalContent {
  return {
    facts: [
      { label: 'Change', value: changeText(r) },
      { label: 'Policy version', value: `${r.policy_id} v${r.version}` },
      { label: 'Requested by', value: r.requested_by },
      { label: 'Authors (none of them may answer)', value: r.authors.join(', ') || r.requested_by },
      { label: 'Deadline', value: r.deadline },
      { label: 'Bound to', value: r.document_hash },
      ...(r.expected_loosening.length > 0 ? [{ label: 'Loosening the requester expects', value: r.expected_loosening.join(', ') }] : []),
      { label: 'Review', value: r.review_id },
    ],
    constraints: [],
    history: [],
    checklist: [],
    agent: [],
    edited: [],
  };
}
