import type { WebClient } from '@slack/web-api';
import { withTenant, type Db } from '../events/db.ts';
import { loadRoundFacts, type RoundFacts } from './facts.ts';
import { digestBlocks, resultBlocks } from './slack.ts';
import { cleanText } from './untrusted-text.ts';

/** Display names of principals (for "approved by …"); ids stand in for names that are gone. */
export async function principalNames(db: Db, tenantId: string, ids: string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const res = await withTenant(db, tenantId, (c) => c.query<{ id: string; name: string }>(
    `SELECT id, name FROM principals WHERE tenant_id = $1 AND id = ANY($2::text[])`, [tenantId, ids],
  ));
  return new Map(res.rows.map((r) => [r.id, r.name]));
}

/** One line on where a round stands: who answered, on which channel, or that it expired. */
export function roundStateText(f: RoundFacts, names: Map<string, string>): string {
  const who = (verdict: 'approve' | 'reject') => f.answers.filter((a) => a.verdict === verdict)
    .map((a) => `${cleanText(names.get(a.approver_id) ?? a.approver_id, 100)} (${a.channel})`).join(', ');
  switch (f.status) {
    case 'approved': return `Round ${f.round} is approved: approved by ${who('approve')}.`;
    case 'rejected': return `Round ${f.round} is rejected: rejected by ${who('reject')}.`;
    case 'expired': return `Round ${f.round} expired: no decision before its deadline ${f.deadline}.`;
    case 'open': {
      const approvals = f.answers.filter((a) => a.verdict === 'approve');
      return `Round ${f.round} is open${approvals.length ? `: approved so far by ${who('approve')}` : ''}.`;
    }
  }
}

type MessageRow = { ref: string; tenant_id: string; decision_id: string; round: number; purpose: string; channel: string; ts: string };

/**
 * Re-renders every Slack message that carries a round's buttons, once the round is closed (an answer on any
 * channel, or expiry): the facts stay, the buttons go, and the final state is shown. A digest message that
 * carries several rounds is re-rendered whole. Idempotent: the same state renders the same message.
 * Returns how many messages were updated and the errors of those that could not be.
 */
export async function closeRoundMessages(db: Db, slack: WebClient, tenantId: string, decisionId: string, round: number): Promise<{ updated: number; errors: string[] }> {
  const facts = await loadRoundFacts(db, tenantId, decisionId, round);
  if (!facts || facts.status === 'open') return { updated: 0, errors: [] };
  const rows = (await withTenant(db, tenantId, (c) => c.query<MessageRow>(
    `SELECT ref, tenant_id, decision_id, round, purpose, channel, ts FROM channel_slack_messages
      WHERE tenant_id = $1 AND decision_id = $2 AND round = $3 AND ts IS NOT NULL`, [tenantId, decisionId, round],
  ))).rows;
  const names = await principalNames(db, tenantId, facts.answers.map((a) => a.approver_id));
  const text = roundStateText(facts, names);
  let updated = 0;
  const errors: string[] = [];
  for (const row of rows) {
    try {
      if (row.purpose === 'digest') await rerenderDigest(db, slack, tenantId, row.channel, row.ts);
      else await slack.chat.update({ channel: row.channel, ts: row.ts, text, blocks: resultBlocks(facts, row.ref, text) as never });
      updated++;
    } catch (err) {
      errors.push(`${row.channel}/${row.ts}: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300));
    }
  }
  return { updated, errors };
}

/** A digest message: every round it carries, each with buttons while open and its final state once closed. */
export async function rerenderDigest(db: Db, slack: WebClient, tenantId: string, channel: string, ts: string): Promise<void> {
  const rows = (await withTenant(db, tenantId, (c) => c.query<MessageRow>(
    `SELECT ref, tenant_id, decision_id, round, purpose, channel, ts FROM channel_slack_messages
      WHERE tenant_id = $1 AND channel = $2 AND ts = $3 AND purpose = 'digest' ORDER BY created_at, ref`,
    [tenantId, channel, ts],
  ))).rows;
  const items: Parameters<typeof digestBlocks>[0] = [];
  for (const row of rows) {
    const facts = await loadRoundFacts(db, row.tenant_id, row.decision_id, row.round);
    if (!facts) continue;
    const names = await principalNames(db, row.tenant_id, facts.answers.map((a) => a.approver_id));
    items.push({ facts, ref: row.ref, state: facts.status === 'open' ? null : roundStateText(facts, names) });
  }
  const open = items.filter((i) => i.state === null).length;
  await slack.chat.update({ channel, ts, text: `Countersign: ${items.length} approval requests, ${open} still open`, blocks: digestBlocks(items) as never });
}
