import { randomBytes } from 'node:crypto';
import { LogLevel, WebClient } from '@slack/web-api';
import type { RoundFacts } from './facts.ts';
import { keyArguments, slackFact, slackUntrusted } from './untrusted-text.ts';

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

/** The approval message: Countersign's facts, the agent's text apart in a quote, and the two buttons. */
export function approvalBlocks(f: RoundFacts, ref: string, purpose: 'request' | 'escalation'): Block[] {
  const title = f.kind === 'override' ? 'Override requested' : purpose === 'escalation' ? 'Approval escalated to you' : 'Approval requested';
  const policies = f.policies.map((p) => `${p.policy_id} v${p.version}`).join(', ') || 'none';
  const args = keyArguments(f.untrusted.args).map(([k, v]) => `${slackUntrusted(k, 60)}: ${slackUntrusted(v, 200)}`).join('\n');
  const agentText = [
    `tool: ${slackUntrusted(f.untrusted.tool, 120)}`,
    f.untrusted.operation ? `operation: ${slackUntrusted(f.untrusted.operation, 120)}` : null,
    args ? `arguments:\n${args}` : null,
    f.untrusted.justification ? `justification: ${slackUntrusted(f.untrusted.justification, 500)}` : null,
  ].filter(Boolean).join('\n');
  return [
    { type: 'header', text: { type: 'plain_text', text: `Countersign: ${title}`, emoji: false } },
    {
      type: 'section',
      fields: [
        field('Decision', `\`${slackFact(f.decision_id, 80)}\` (round ${f.round})`),
        field('Deadline', slackFact(f.deadline, 40)),
        field('Rule', slackFact(f.matched_rule ?? 'none', 120)),
        field('Policy version', slackFact(policies, 200)),
        field('Reason', slackFact(f.untrusted.reason, 300)),
        field('Agent', slackFact(f.agent_id, 120)),
      ],
    },
    { type: 'context', elements: [{ type: 'mrkdwn', text: 'Written by the agent (unverified; shown as text):', verbatim: true }] },
    { type: 'section', text: { type: 'mrkdwn', text: `\`\`\`${agentText}\`\`\``, verbatim: true } },
    {
      type: 'actions',
      block_id: 'countersign_answer',
      elements: [
        { type: 'button', action_id: 'countersign_approve', style: 'primary', text: { type: 'plain_text', text: 'Approve' }, value: ref },
        { type: 'button', action_id: 'countersign_reject', style: 'danger', text: { type: 'plain_text', text: 'Reject' }, value: ref },
      ],
    },
  ];
}

/** The message after a click: the facts stay, the buttons give way to what happened. */
export function resultBlocks(f: RoundFacts | null, ref: string, outcome: string): Block[] {
  const base = f ? approvalBlocks(f, ref, 'request').filter((b) => b['type'] !== 'actions') : [];
  return [...base, { type: 'section', text: { type: 'mrkdwn', text: slackFact(outcome, 500), verbatim: true } }];
}

export function fallbackText(f: RoundFacts): string {
  return `Countersign: approval requested for ${slackUntrusted(f.untrusted.tool, 80)} (decision ${slackFact(f.decision_id, 80)}, round ${f.round}), deadline ${f.deadline}`;
}
