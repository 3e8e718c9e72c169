import { withTenant, type Db } from '../events/db.ts';
import { loadRunView } from '../decisions/read-decision.ts';
import type { Round } from '../decisions/run-view.ts';
import { finalDeadlineOf, requirementLines } from '../decisions/approval-requirements.ts';
import { checklistOf } from '../decisions/checklist.ts';
import { agentHistories, type HistoryEntry } from '../decisions/agent-history.ts';
import { inboxEditFields } from '../decisions/run-messages.ts';

/** What an approver is shown about one round. `facts` come from Countersign; `untrusted` from the agent. */
export type RoundFacts = {
  decision_id: string;
  tenant_id: string;
  round: number;
  kind: Round['kind'];
  status: Round['status'];
  deadline: string;
  /** The latest the round can close: its deadline, or, before an escalation still to come, the escalated one. */
  final_deadline: string;
  /** The escalation level the round is at (0 before any escalation). */
  level: number;
  args_digest: string | null;
  matched_rule: string | null;
  policies: Array<{ policy_id: string; version: number }>;
  agent_id: string;
  /** Answers already counted in this round, in order. */
  answers: Array<{ approver_id: string; verdict: 'approve' | 'reject'; channel: string }>;
  /** A round of requirements: one line per requirement (each must be satisfied), else absent. */
  requirements?: string[];
  /** The judgment rules the approver checks (policy text: shown escaped, as untrusted). */
  checklist?: Array<{ policy_id: string; version: number; rule: string; text: string }> | undefined;
  /** The constraints that will apply when the round approves (as GET /v1/approvals shows them). */
  constraints?: Record<string, unknown>;
  /** The agent's last decisions for the same tool before this one, newest first (as GET /v1/approvals shows them). */
  history?: HistoryEntry[];
  /** Whether an approver may approve changed arguments in this round (an approval round whose rules allow edits). */
  edits_allowed?: boolean;
  /** The edited arguments the round's approvals so far approved (every further approval must approve them), and by whom. */
  edited_args?: unknown;
  edited_by?: string | null;
  /** Agent-supplied: shown escaped and apart. */
  untrusted: { tool: string; operation: string | null; args: unknown; reason: string; justification: string | null };
};

export async function loadRoundFacts(db: Db, tenantId: string, decisionId: string, round: number): Promise<RoundFacts | null> {
  return withTenant(db, tenantId, async (c) => {
    const { view, events } = await loadRunView(c, decisionId);
    const r = view?.rounds.find((x) => x.round === round);
    if (!view || !r || view.tenant_id !== tenantId) return null;
    const requested = events.find((e) => e.type === 'DecisionRequested');
    const args = (requested?.data as { request?: { action?: { args?: unknown } } } | undefined)?.request?.action?.args;
    const history = (await agentHistories(c, tenantId, [{ decision_id: view.decision_id, agent_id: view.agent_id, tool: view.action.tool }])).get(view.decision_id) ?? [];
    return {
      decision_id: view.decision_id,
      tenant_id: view.tenant_id,
      round: r.round,
      kind: r.kind,
      status: r.status,
      deadline: r.deadline,
      level: r.level,
      final_deadline: r.requirements ? finalDeadlineOf(r) : r.level === 0 && r.escalate_to.length > 0 ? new Date(Date.parse(r.deadline) + r.level_timeout_sec * 1000).toISOString() : r.deadline,
      args_digest: r.args_digest,
      matched_rule: view.matched_rule,
      policies: view.policies.map((p) => ({ policy_id: p.policy_id, version: p.version })),
      agent_id: view.agent_id,
      answers: [
        ...r.approvals.map((a) => ({ approver_id: a.approver_id, verdict: 'approve' as const, channel: a.channel, at: a.at })),
        ...r.rejections.map((a) => ({ approver_id: a.approver_id, verdict: 'reject' as const, channel: a.channel, at: a.at })),
      ].sort((a, b) => a.at.localeCompare(b.at)).map(({ approver_id, verdict, channel }) => ({ approver_id, verdict, channel })),
      ...(r.requirements ? { requirements: requirementLines(r) } : {}),
      checklist: r.kind === 'approval' ? checklistOf(view).map(({ policy_id, version, rule, text }) => ({ policy_id, version, rule, text })) : [],
      constraints: view.constraints,
      history,
      ...inboxEditFields(view, r),
      untrusted: { tool: view.action.tool, operation: view.action.operation ?? null, args, reason: view.reason, justification: r.justification ?? null },
    };
  });
}
