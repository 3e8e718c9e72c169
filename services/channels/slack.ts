import { randomBytes } from 'node:crypto';
import { LogLevel, WebClient } from '@slack/web-api';
import type { RoundFacts } from './facts.ts';
import { slackFact, slackUntrusted } from './untrusted-text.ts';
import { changeText, CONTEXT_HEADINGS, EDITED_HEADING, reviewContent, roundContent, type ApprovalContent } from './approval-content.ts';
import type { ReviewFacts } from './review-facts.ts';

export type SlackConfig = { botToken: string; apiUrl: string };

export function slackClient(cfg: SlackConfig): WebClient {
  const apiUrl = cfg.apiUrl.endsWith('/') ? cfg.apiUrl : `${cfg.apiUrl}/`;
  return new WebClient(cfg.botToken, {
    slackApiUrl: apiUrl,
    allowAbsoluteUrls: false,
    retryConfig: { retries: 2, factor: 1, minTimeout: 200, maxTimeout: 1_000 },
    timeout: 10_000,
    rejectRateLimitedCalls: true,
    logLevel: LogLevel.ERROR,
  });
}

/** A reference to one posted message: the value of its buttons, the only thing a click carries back. */
export const newSlackRef = () => randomBytes(18).toString('base64url');

type Block = Record<string, unknown>;

const field = (label: string, value: string) => ({ type: 'mrkdwn', text: `*${label}*\n${value}`, verbatim: true });

/** The action ids of the buttons on an approval message (and the one that opens the edit modal). */
export const APPROVE_ACTION = 'countersign_approve';
export const REJECT_ACTION = 'countersign_reject';
export const EDIT_ACTION = 'countersign_edit';

/** The answer buttons: Approve, Reject, and Approve with edit where the round allows edits. */
export function answerButtons(ref: string, edits: boolean, blockId = 'countersign_answer'): Block {
  return {
    type: 'actions',
    block_id: blockId,
    elements: [
      { type: 'button', action_id: APPROVE_ACTION, style: 'primary', text: { type: 'plain_text', text: 'Approve' }, value: ref },
      { type: 'button', action_id: REJECT_ACTION, style: 'danger', text: { type: 'plain_text', text: 'Reject' }, value: ref },
      ...(edits ? [{ type: 'button', action_id: EDIT_ACTION, text: { type: 'plain_text', text: 'Approve with edit' }, value: ref }] : []),
    ],
  };
}

/** The approver context: constraints that will apply and the agent's recent history for the tool, as inert text. */
export function contextBlocks(c: ApprovalContent, agentId: string): Block[] {
  const constraints = c.constraints.length > 0
    ? `*${CONTEXT_HEADINGS.constraints}*\n${c.constraints.map((l) => `• ${slackUntrusted(l.label, 60)}: ${slackUntrusted(l.value, 200)}`).join('\n')}`
    : CONTEXT_HEADINGS.noConstraints;
  const history = c.history.length > 0
    ? `*${slackFact(CONTEXT_HEADINGS.history(agentId), 200)}*\n${c.history.map((l) => `• ${slackUntrusted(l.operation, 120)}: ${slackFact(l.fact, 200)}`).join('\n')}`
    : CONTEXT_HEADINGS.noHistory;
  return [{ type: 'section', text: { type: 'mrkdwn', text: `${constraints}\n${history}`, verbatim: true } }];
}

/** The approval message: Countersign's facts, the approver context, the agent's text apart in a quote, and the buttons. */
export function approvalBlocks(f: RoundFacts, ref: string, purpose: 'request' | 'escalation' | 'reminder'): Block[] {
  const what = f.kind === 'override' ? 'Override requested' : purpose === 'escalation' ? 'Approval escalated to you' : 'Approval requested';
  const title = purpose === 'reminder' ? `Reminder: ${what.toLowerCase()}, deadline ${f.deadline}` : what;
  const c = roundContent(f);
  const requirements = c.facts.filter((l) => l.label.startsWith('Requirement '));
  const agentText = c.agent.map((l) => `${slackUntrusted(l.label, 70)}: ${slackUntrusted(l.value, l.label === 'justification' ? 500 : 200)}`).join('\n');
  return [
    { type: 'header', text: { type: 'plain_text', text: `Countersign: ${title}`, emoji: false } },
    {
      type: 'section',
      fields: [
        ...c.facts.filter((l) => !l.label.startsWith('Requirement ')).map((l) => field(l.label, slackFact(l.value, 300))),
        ...(requirements.length > 0 ? [field('Every one of these must approve', slackFact(requirements.map((l) => l.value).join('\n'), 1000))] : []),
      ],
    },
    ...checklistBlocks(f),
    ...contextBlocks(c, f.agent_id),
    { type: 'context', elements: [{ type: 'mrkdwn', text: 'Written by the agent (unverified; shown as text):', verbatim: true }] },
    { type: 'section', text: { type: 'mrkdwn', text: `\`\`\`${agentText}\`\`\``, verbatim: true } },
    ...(c.edited.length > 0 ? [
      { type: 'context', elements: [{ type: 'mrkdwn', text: slackFact(EDITED_HEADING(f.edited_by), 300), verbatim: true }] },
      { type: 'section', text: { type: 'mrkdwn', text: `\`\`\`${c.edited.map((l) => `${slackUntrusted(l.label, 70)}: ${slackUntrusted(l.value, 200)}`).join('\n')}\`\`\``, verbatim: true } },
    ] : []),
    answerButtons(ref, f.edits_allowed === true),
  ];
}

/** Most checklist items one message shows; the rest are named by count (GET /v1/approvals has them all). */
export const CHECKLIST_MAX_ITEMS = 10;

/** The judgment rules the approver checks before answering: policy text, escaped like the agent's. */
export function checklistBlocks(f: RoundFacts): Block[] {
  const all = roundContent(f).checklist;
  if (all.length === 0) return [];
  const shown = all.slice(0, CHECKLIST_MAX_ITEMS);
  const lines = shown.map((j) => `• ${slackUntrusted(j, 800)}`);
  if (all.length > shown.length) lines.push(`… and ${all.length - shown.length} more (see GET /v1/approvals)`);
  return [
    { type: 'context', elements: [{ type: 'mrkdwn', text: 'Checklist: judgment rules of the policy. Check each before you approve:', verbatim: true }] },
    { type: 'section', text: { type: 'mrkdwn', text: lines.join('\n'), verbatim: true } },
  ];
}

/**
 * A four-eyes review's message: Countersign's record of the policy change and the buttons while it is open, or
 * how it ended (`state`) once it is not. Nothing in it was written by an agent.
 */
export function reviewBlocks(r: ReviewFacts, ref: string, state: string | null): Block[] {
  const c = reviewContent(r);
  return [
    { type: 'header', text: { type: 'plain_text', text: 'Countersign: policy change to review (four eyes)', emoji: false } },
    { type: 'section', fields: c.facts.slice(0, 10).map((l) => field(l.label, slackFact(l.value, 300))) },
    { type: 'context', elements: [{ type: 'mrkdwn', text: 'A second admin approves or rejects this change; whoever asked for it or wrote it cannot.', verbatim: true }] },
    state === null ? answerButtons(ref, false) : { type: 'section', text: { type: 'mrkdwn', text: slackFact(state, 500), verbatim: true } },
  ];
}

export function reviewFallbackText(r: ReviewFacts): string {
  return `Countersign: review requested: ${slackFact(changeText(r), 200)}, deadline ${slackFact(r.deadline, 40)}`;
}

/** The message after a click: the facts stay, the buttons give way to what happened. */
export function resultBlocks(f: RoundFacts | null, ref: string, outcome: string): Block[] {
  const base = f ? approvalBlocks(f, ref, 'request').filter((b) => b['type'] !== 'actions') : [];
  return [...base, { type: 'section', text: { type: 'mrkdwn', text: slackFact(outcome, 500), verbatim: true } }];
}

export function fallbackText(f: RoundFacts): string {
  return `Countersign: approval requested for ${slackUntrusted(f.untrusted.tool, 80)} (decision ${slackFact(f.decision_id, 80)}, round ${f.round}), deadline ${f.deadline}`;
}

/** A digest round's checklist, inside its own section (a digest has no blocks to spare): escaped policy text. */
function digestChecklist(f: RoundFacts): string {
  const all = f.checklist ?? [];
  if (all.length === 0) return '';
  const shown = all.slice(0, 3);
  const lines = shown.map((j) => `• ${slackUntrusted(j.text, 300)} (rule ${slackFact(j.rule, 100)})`);
  if (all.length > shown.length) lines.push(`… and ${all.length - shown.length} more (see GET /v1/approvals)`);
  return `\n*Checklist* (judgment rules: check each before you approve):\n${lines.join('\n')}`;
}

/** Most rounds one digest message shows (Slack allows 50 blocks a message; each round takes three). */
export const DIGEST_MAX_ROUNDS = 15;

/**
 * A digest: the rounds held back by the per-approver cap, in one message. Each open round keeps its own
 * buttons (its own ref); a closed one shows how it ended. Agent text stays escaped and labelled.
 */
export function digestBlocks(items: Array<{ facts: RoundFacts; ref: string; state: string | null }>): Block[] {
  const shown = items.slice(0, DIGEST_MAX_ROUNDS);
  const blocks: Block[] = [
    { type: 'header', text: { type: 'plain_text', text: `Countersign: ${items.length} approval request${items.length === 1 ? '' : 's'} (digest)`, emoji: false } },
    { type: 'context', elements: [{ type: 'mrkdwn', text: 'You reached the hourly notification limit; these requests were held back and are grouped here.', verbatim: true }] },
  ];
  shown.forEach(({ facts: f, ref, state }, i) => {
    const policies = f.policies.map((p) => `${p.policy_id} v${p.version}`).join(', ') || 'none';
    blocks.push({
      type: 'section',
      text: {
        type: 'mrkdwn',
        verbatim: true,
        text: `*Decision* \`${slackFact(f.decision_id, 80)}\` (round ${f.round}) · *Rule* ${slackFact(f.matched_rule ?? 'none', 120)} · *Policy* ${slackFact(policies, 200)} · *Deadline* ${slackFact(f.deadline, 40)}\n`
          + `Written by the agent (unverified): \`\`\`tool: ${slackUntrusted(f.untrusted.tool, 120)}${f.untrusted.operation ? `, operation: ${slackUntrusted(f.untrusted.operation, 120)}` : ''}\`\`\``
          + digestChecklist(f),
      },
    });
    blocks.push(state === null
      ? answerButtons(ref, f.edits_allowed === true, `countersign_answer_${i}`)
      : { type: 'context', elements: [{ type: 'mrkdwn', text: slackFact(state, 500), verbatim: true }] });
    blocks.push({ type: 'divider' });
  });
  if (items.length > shown.length) {
    blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `${items.length - shown.length} more waiting: see \`countersign approvals list\` or GET /v1/approvals.`, verbatim: true }] });
  }
  return blocks;
}
