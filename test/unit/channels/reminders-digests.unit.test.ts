import { describe, expect, it } from 'vitest';
import { durationSeconds } from '../../../schemas/duration.ts';
import { approvalEmail, digestEmail } from '../../../services/channels/email.ts';
import type { RoundFacts } from '../../../services/channels/facts.ts';
import { roundStateText } from '../../../services/channels/round-messages.ts';
import { approvalBlocks, DIGEST_MAX_ROUNDS, digestBlocks } from '../../../services/channels/slack.ts';
import { reminderAt, remindBeforeSetting } from '../../../workflows/decision-reminders.ts';

const HOUR = 3_600_000;

describe('reminder timing (pure, used by the workflow)', () => {
  const start = Date.parse('2030-01-01T00:00:00Z');
  it('reminds a percentage of the level, or a fixed lead, before the deadline', () => {
    expect(reminderAt({ percent: 25 }, start, start + HOUR)).toBe(start + 0.75 * HOUR);
    expect(reminderAt({ sec: 900 }, start, start + HOUR)).toBe(start + HOUR - 900_000);
  });
  it('does not remind without a setting, or when the moment would not be after the level started', () => {
    expect(reminderAt(null, start, start + HOUR)).toBeNull();
    expect(reminderAt(undefined, start, start + HOUR)).toBeNull();
    expect(reminderAt({ sec: 3600 }, start, start + HOUR)).toBeNull();
    expect(reminderAt({ sec: 7200 }, start, start + HOUR)).toBeNull();
    expect(reminderAt({ percent: 50 }, start, start + 1_500)).toBeNull(); // 0.75 s after the start: too soon
  });
  it('reads COUNTERSIGN_REMIND_BEFORE', () => {
    expect(remindBeforeSetting('off', durationSeconds)).toBeNull();
    expect(remindBeforeSetting('25%', durationSeconds)).toEqual({ percent: 25 });
    expect(remindBeforeSetting('15m', durationSeconds)).toEqual({ sec: 900 });
    expect(remindBeforeSetting('soon', durationSeconds)).toBeNull();
  });
});

const HOSTILE = '<!channel> <@U0BOSS> <http://evil.example|bank> *Approved by CEO* \u202eRTL\u202c `x`';
const facts = (n: number, over: Partial<RoundFacts> = {}): RoundFacts => ({
  decision_id: `dec_${String(n).padStart(32, '0')}`, tenant_id: 't', round: 1, kind: 'approval', status: 'open', deadline: '2030-01-01T01:00:00.000Z',
  final_deadline: '2030-01-01T01:00:00.000Z', level: 0, args_digest: null, matched_rule: 'rule', policies: [{ policy_id: 'p', version: 2 }], agent_id: 'bot', answers: [],
  untrusted: { tool: HOSTILE, operation: HOSTILE, args: { note: HOSTILE }, reason: 'r', justification: null }, ...over,
});

describe('digests and closing notices', () => {
  it('a Slack digest keeps agent text inert, gives each open round its own buttons, and stays within Slack’s 50 blocks', () => {
    const items = Array.from({ length: 40 }, (_, i) => ({ facts: facts(i), ref: `ref${String(i).padStart(20, '0')}`, state: i % 2 ? 'Round 1 is approved: approved by Sam (api).' : null }));
    const blocks = digestBlocks(items);
    expect(blocks.length).toBeLessThanOrEqual(50);
    const shown = JSON.stringify(blocks);
    for (const bad of ['<!channel>', '<@U0BOSS>', '<http', '*Approved by CEO*', '\u202e']) expect(shown).not.toContain(bad);
    const actions = blocks.filter((b) => b['type'] === 'actions') as Array<{ elements: Array<{ value: string }> }>;
    expect(actions.map((a) => a.elements[0]!.value)).toEqual(items.slice(0, DIGEST_MAX_ROUNDS).filter((i) => i.state === null).map((i) => i.ref));
    expect(shown).toContain(`${40 - DIGEST_MAX_ROUNDS} more waiting`);
  });
  it('an email digest has each round’s own link and no agent markup as HTML', () => {
    const mail = digestEmail([{ facts: facts(1), link: 'https://cs.example/v1/email-approvals/a' }, { facts: facts(2), link: 'https://cs.example/v1/email-approvals/b' }]);
    expect(mail.subject).toMatch(/2 approval requests .*digest/);
    expect(mail.text).toContain('https://cs.example/v1/email-approvals/a');
    expect(mail.text).toContain('https://cs.example/v1/email-approvals/b');
    expect(mail.text).not.toContain('http://evil');
    expect(mail.html).not.toMatch(/<http|<@U0BOSS>|\u202e/);
  });
  it('a reminder says so, in Slack and by email', () => {
    expect(JSON.stringify(approvalBlocks(facts(1), 'r'.repeat(24), 'reminder'))).toContain('Reminder: approval requested');
    expect(approvalEmail(facts(1), 'https://x/y', 'reminder').subject).toMatch(/^Reminder/);
  });
  it('states how a round ended, naming who answered on which channel', () => {
    const names = new Map([['p1', 'Sam'], ['p2', 'Dee']]);
    const answers = [{ approver_id: 'p1', verdict: 'approve' as const, channel: 'email' }, { approver_id: 'p2', verdict: 'reject' as const, channel: 'slack' }];
    expect(roundStateText(facts(1, { status: 'approved', answers: answers.slice(0, 1) }), names)).toBe('Round 1 is approved: approved by Sam (email).');
    expect(roundStateText(facts(1, { status: 'rejected', answers }), names)).toBe('Round 1 is rejected: rejected by Dee (slack).');
    expect(roundStateText(facts(1, { status: 'expired' }), names)).toMatch(/^Round 1 expired: no decision before its deadline/);
    expect(roundStateText(facts(1, { answers: answers.slice(0, 1) }), names)).toBe('Round 1 is open: approved so far by Sam (email).');
  });
});
