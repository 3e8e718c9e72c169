import { describe, expect, it } from 'vitest';
import { checkEditSubmission, parseSlackInteraction } from '../../../services/channels/answers.ts';
import { roundContent, reviewContent } from '../../../services/channels/approval-content.ts';
import { parseEditedArgs } from '../../../services/channels/edited-args.ts';
import { approvalEmail, confirmationPage } from '../../../services/channels/email.ts';
import type { RoundFacts } from '../../../services/channels/facts.ts';
import type { ReviewFacts } from '../../../services/channels/review-facts.ts';
import { approvalBlocks, reviewBlocks } from '../../../services/channels/slack.ts';
import { editableArgs, editModal, sealEdit, unsealEdit } from '../../../services/channels/slack-edit.ts';
import { visibleJson } from '../../../services/channels/untrusted-text.ts';

const HOSTILE = '<!channel> <@U0BOSS> <http://evil.example|bank> *Approved by CEO* \u202eRTL\u202c \u200bzw `x` <script>alert(1)</script>';
const facts = (over: Partial<RoundFacts> = {}): RoundFacts => ({
  decision_id: 'dec_0123456789abcdef0123456789abcdef', tenant_id: 't', round: 1, kind: 'approval', status: 'open', deadline: '2030-01-01T01:00:00.000Z',
  final_deadline: '2030-01-01T01:00:00.000Z', level: 0, args_digest: 'sha256:' + 'a'.repeat(64), matched_rule: 'big', policies: [{ policy_id: 'p', version: 2 }], agent_id: 'pay-bot', answers: [],
  constraints: { max_runtime_sec: 600, allowed_hosts: ['a.example'] },
  history: [{ decision_id: 'dec_earlier', asked_at: '2029-12-31T10:00:00.000Z', operation: 'Refund', decision: 'ALLOW', finalized_via: 'policy', outcome: 'succeeded' }],
  edits_allowed: true,
  untrusted: { tool: 'pay_tool', operation: 'Refund', args: { amount: 650, note: 'hi' }, reason: 'big refunds', justification: null }, ...over,
});
const SECRET = Buffer.from('unit-attestation-secret-0123456789');

describe('one builder of approval content for Slack and email', () => {
  it('shows the constraints that will apply and the agent\'s recent history on both channels', () => {
    const c = roundContent(facts());
    expect(c.constraints).toEqual([{ label: 'max_runtime_sec', value: '600' }, { label: 'allowed_hosts', value: '["a.example"]' }]);
    expect(c.history).toEqual([{ operation: 'Refund', fact: 'ALLOW (policy), outcome succeeded, asked 2029-12-31 10:00Z' }]);
    const slack = JSON.stringify(approvalBlocks(facts(), 'r'.repeat(24), 'request'));
    const mail = approvalEmail(facts(), 'https://cs.example/v1/email-approvals/x');
    for (const text of [slack, mail.text, mail.html]) {
      expect(text).toContain('Constraints that will apply once approved');
      expect(text).toContain('Recent decisions of pay-bot for this tool');
      expect(text).toContain('ALLOW (policy), outcome succeeded');
    }
    expect(slack).toContain('countersign_edit');
    expect(JSON.stringify(approvalBlocks(facts({ edits_allowed: false }), 'r'.repeat(24), 'request'))).not.toContain('countersign_edit');
    const none = approvalEmail(facts({ constraints: {}, history: [] }), 'https://x/y').text;
    expect(none).toContain('No constraints will apply once approved.');
    expect(none).toContain('No earlier decisions of this agent for this tool.');
  });

  it('attack: hostile text in constraints, history and checklist never reaches an approver as markup, a mention, a link or hidden characters', () => {
    const cases: Array<Partial<RoundFacts>> = [
      { constraints: { [HOSTILE]: HOSTILE } },
      { history: [{ decision_id: 'dec_x', asked_at: '2029-12-31T10:00:00.000Z', operation: HOSTILE, decision: 'ALLOW', finalized_via: null, outcome: null }] },
      { checklist: [{ policy_id: 'p', version: 1, rule: 'r', text: HOSTILE }] },
      { untrusted: { tool: HOSTILE, operation: HOSTILE, args: { [HOSTILE]: HOSTILE }, reason: 'r', justification: HOSTILE } },
    ];
    let through = 0;
    for (const over of cases) {
      const f = facts(over);
      const slack = JSON.stringify(approvalBlocks(f, 'r'.repeat(24), 'request'));
      const mail = approvalEmail(f, 'https://cs.example/v1/email-approvals/x');
      const page = confirmationPage(f, '/v1/email-approvals/x', 'csrf');
      for (const bad of ['<!channel>', '<@U0BOSS>', '<http', '*Approved by CEO*', '\u202e', '\u200b']) if (slack.includes(bad)) through++;
      // The plain-text part is never rendered: what matters there is hidden characters and live links.
      for (const bad of ['\u202e', '\u200b', 'http://evil']) if (mail.text.includes(bad)) through++;
      for (const bad of ['<script>', '\u202e', '\u200b']) if (mail.html.includes(bad) || page.includes(bad)) through++;
    }
    console.log(`attack hostile approver context: ${cases.length * 3} attempts, ${through} got through`);
    expect(through).toBe(0);
  });

  it('a review\'s message states the change and offers no edit', () => {
    const r: ReviewFacts = {
      tenant_id: 't', review_id: 'policy-review/t/refunds/v2/x', policy_id: 'refunds', version: 2, change: { kind: 'activate' }, status: 'open',
      requested_by: 'p-rae', authors: ['p-rae'], document_hash: 'sha256:' + 'b'.repeat(64), expected_loosening: [], deadline: '2030-01-01T00:00:00.000Z', answers: [],
    };
    expect(reviewContent(r).facts[0]).toEqual({ label: 'Change', value: 'activate refunds v2' });
    const blocks = JSON.stringify(reviewBlocks(r, 'r'.repeat(24), null));
    expect(blocks).toContain('countersign_approve');
    expect(blocks).not.toContain('countersign_edit');
    expect(reviewContent({ ...r, change: { kind: 'rollback', to_version: 1 } }).facts[0]!.value).toBe('roll refunds back to v1');
    expect(JSON.stringify(reviewBlocks({ ...r, status: 'approved' }, 'r'.repeat(24), 'Approved by Ray'))).not.toContain('countersign_approve');
  });
});

describe('approve with edit: the Slack modal and the edited arguments', () => {
  const seal = { ref: 'R'.repeat(24), userId: 'U0ANN', round: 1, argsDigest: 'sha256:' + 'c'.repeat(64) };
  const submission = (metadata: string, args: string, user = 'U0ANN') => new URLSearchParams({ payload: JSON.stringify({
    type: 'view_submission', team: { id: 'T1' }, user: { id: user, team_id: 'T1' },
    view: { callback_id: 'countersign_edit_args', private_metadata: metadata, state: { values: { args: { args: { value: args } } } } },
  }) }).toString();

  it('a sealed modal opens with the arguments (hidden characters as escapes) and its submission carries the edit', () => {
    const f = facts({ untrusted: { tool: 't', operation: null, args: { note: 'a\u200bb\u202ec' }, reason: 'r', justification: null } });
    const prefill = editableArgs(f)!;
    expect(prefill).toContain('a\\u200bb\\u202ec');
    expect(JSON.parse(prefill)).toEqual({ note: 'a\u200bb\u202ec' });
    expect(visibleJson({ a: '\u0085' })).toContain('\\u0085');
    const sealed = sealEdit(SECRET, seal);
    expect(editModal(f, sealed, prefill)).toMatchObject({ callback_id: 'countersign_edit_args', private_metadata: sealed });
    expect(unsealEdit(SECRET, sealed)).toEqual(seal);
    const action = parseSlackInteraction(submission(sealed, '{"amount": 600}'))!;
    const checked = checkEditSubmission(SECRET, action);
    expect(checked).toMatchObject({ ok: true, round: 1, action: { verdict: 'approve', ref: seal.ref, edit: { args: { amount: 600 }, argsDigest: seal.argsDigest } } });
    expect(editableArgs(facts({ untrusted: { tool: 't', operation: null, args: { pad: 'x'.repeat(4000) }, reason: 'r', justification: null } }))).toBeNull();
  });

  it('a round already being approved with an edit shows those arguments and prefills the edit with them', () => {
    const f = facts({ edited_args: { amount: 600, note: 'hi' }, edited_by: 'p-ann' });
    const slack = JSON.stringify(approvalBlocks(f, 'r'.repeat(24), 'request'));
    const mail = approvalEmail(f, 'https://x/y');
    for (const text of [slack, mail.text, mail.html]) expect(text).toContain('Being approved with edited arguments (edited by p-ann)');
    expect(mail.text).toContain('argument amount: 600');
    expect(JSON.parse(editableArgs(f)!)).toEqual({ amount: 600, note: 'hi' });
    expect(confirmationPage(f, '/v1/email-approvals/x', 'c')).toContain('&quot;amount&quot;: 600');
  });

  it('attack: forged, moved or re-addressed metadata and malformed arguments never carry an edit', () => {
    const sealed = sealEdit(SECRET, seal);
    const parts = sealed.split('.');
    const forged = [
      submission(sealEdit(Buffer.from('another-secret'), seal), '{"amount": 600}'),
      submission([...parts.slice(0, 4), parts[4]!.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))].join('.'), '{"amount": 600}'),
      submission(['S'.repeat(24), ...parts.slice(1)].join('.'), '{"amount": 600}'),
      submission([parts[0], 'U0BOB', ...parts.slice(2)].join('.'), '{"amount": 600}'),
      submission([parts[0], parts[1], '2', ...parts.slice(3)].join('.'), '{"amount": 600}'),
      submission([...parts.slice(0, 3), '-', parts[4]].join('.'), '{"amount": 600}'),
      submission(sealed, '{"amount": 600}', 'U0BOB'),
      submission(`${sealed}.extra`, '{"amount": 600}'),
      submission(sealed, '{"amount": 600'),
      submission(sealed, '[600]'),
      submission(sealed, 'null'),
      submission(sealed, JSON.stringify({ pad: 'x'.repeat(70_000) })),
    ];
    let through = 0;
    for (const body of forged) {
      const action = parseSlackInteraction(body);
      if (action && checkEditSubmission(SECRET, action).ok) through++;
    }
    console.log(`attack forged Slack edit submissions: ${forged.length} attempts, ${through} got through`);
    expect(through).toBe(0);
    expect(parseEditedArgs('{"a":1}')).toEqual({ ok: true, args: { a: 1 } });
  });
});
