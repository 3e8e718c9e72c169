import type { Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SMTPServer } from 'smtp-server';
import { smtpCapture, unqp } from './smtp-capture.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../services/receipts/canonical.ts';
import { slackSignature } from '../../services/channels/slack-signature.ts';
import { ensureBootstrap } from '../../services/identity/bootstrap.ts';
import { activateYaml, addPrincipal, api, eventually, startTestStack, type TestStack } from './harness.ts';
import { slackStandIn, type SlackCall } from './slack-stand-in.ts';

// The approval channels catch up with the API: four-eyes policy reviews notified and answered on Slack and by
// email (through the API's own review path), the approver context (constraints, the agent's recent history) on
// both channels, and approve with edit from a Slack modal and from the email page. Attacks print their line.

const SECRET = 'slack-signing-secret-under-test-reviews-0123';
const TEAM = 'T0REVIEWS';
const RUN = randomUUID().slice(0, 8);

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: channel-edits, name: Refunds approvers may lower }
scope: { level: tenant }
rules:
  - name: small
    match: { tool: chan_refund_tool }
    condition: action.args.amount <= 500
    decision: ALLOW
  - name: big
    match: { tool: chan_refund_tool }
    condition: action.args.amount > 500 && action.args.amount <= 5000
    decision: REQUIRE_APPROVAL
    reason: big refunds need finance
    constraints: { max_runtime_sec: 600 }
    approval: { approvers: [finance], quorum: 1, timeout: 1h }
  - name: cfo
    match: { tool: chan_refund_tool }
    condition: action.args.amount > 2000 && action.args.amount <= 5000
    decision: REQUIRE_APPROVAL
    approval: { approvers: [cfo], quorum: 1, timeout: 1h }
  - name: wipes
    match: { tool: chan_wipe_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [finance], quorum: 1, timeout: 1h, allow_edits: false }
`;

type Mail = { to: string[]; raw: string };

let stack: TestStack;
let slack: Server;
let smtp: SMTPServer;
const calls: SlackCall[] = [];
const mails: Mail[] = [];

const post = (body: string, headers: Record<string, string>) =>
  fetch(`${stack.url}/v1/slack/interactions`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
const signed = (body: string, ts = Math.floor(Date.now() / 1000), secret = SECRET) => ({ 'x-slack-request-timestamp': String(ts), 'x-slack-signature': slackSignature(secret, String(ts), body) });
const form = (p: unknown) => new URLSearchParams({ payload: JSON.stringify(p) }).toString();
function click(opts: { team?: string; user: string; action: 'approve' | 'reject' | 'edit'; ref: string }): string {
  return form({
    type: 'block_actions', team: { id: opts.team ?? TEAM, domain: 'test' }, user: { id: opts.user, team_id: opts.team ?? TEAM }, api_app_id: 'A1', trigger_id: randomUUID(),
    actions: [{ type: 'button', action_id: `countersign_${opts.action}`, block_id: 'countersign_answer', value: opts.ref, action_ts: `${Date.now() / 1000}` }],
  });
}
function editSubmission(opts: { team?: string; user: string; metadata: string; args: string }): string {
  return form({
    type: 'view_submission', team: { id: opts.team ?? TEAM, domain: 'test' }, user: { id: opts.user, team_id: opts.team ?? TEAM }, api_app_id: 'A1',
    view: { id: 'V1', type: 'modal', callback_id: 'countersign_edit_args', private_metadata: opts.metadata, state: { values: { args: { args: { type: 'plain_text_input', value: opts.args } } } } },
  });
}
const blocksOf = (c: SlackCall) => JSON.stringify(c.body['blocks']);
const messageTo = (user: string, text: string) => eventually(async () => calls.find((c) => c.method === 'chat.postMessage' && c.body['channel'] === user && blocksOf(c).includes(text)), 30_000, `message to ${user} about ${text}`);
const refOf = (m: SlackCall) => (m.body['blocks'] as any[]).find((b) => b.type === 'actions').elements[0].value as string;
const linkFor = (to: string, text: string) => eventually(async () => {
  const m = mails.find((x) => x.to.includes(to) && unqp(x.raw).includes(text));
  const link = m && /https?:\/\/[^\s"<>]+\/v1\/email-approvals\/[A-Za-z0-9_-]{43}/.exec(unqp(m.raw))?.[0];
  return link ? { link, mail: unqp(m.raw) } : undefined;
}, 30_000, `mail to ${to} about ${text}`);
const pageOf = async (link: string) => {
  const res = await fetch(link);
  const body = await res.text();
  return { status: res.status, body, csrf: /name="csrf" value="([^"]+)"/.exec(body)?.[1] ?? '', digest: /name="args_digest" value="([^"]*)"/.exec(body)?.[1] ?? '' };
};
const postForm = (link: string, fields: Record<string, string>) =>
  fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });

beforeAll(async () => {
  slack = slackStandIn(calls, TEAM);
  await new Promise<void>((r) => slack.listen(0, '127.0.0.1', () => r()));
  smtp = await smtpCapture(mails);
  stack = await startTestStack({
    COUNTERSIGN_SLACK_SIGNING_SECRET: SECRET,
    COUNTERSIGN_SLACK_BOT_TOKEN: 'xoxb-test-token-reviews',
    COUNTERSIGN_SLACK_API_URL: `http://127.0.0.1:${(slack.address() as { port: number }).port}/api/`,
    COUNTERSIGN_SMTP_URL: `smtp://127.0.0.1:${(smtp.server.address() as { port: number }).port}`,
    COUNTERSIGN_MAIL_FROM: 'Countersign <noreply@countersign.test>',
  });
}, 180_000);
afterAll(async () => {
  await stack?.stop();
  slack?.close();
  await new Promise<void>((r) => smtp?.close(() => r()));
});

describe('four-eyes policy reviews on Slack and by email', () => {
  let tenant: { id: string; admin: string };
  let rae: { id: string; key: string };
  let ray: { id: string; key: string };
  let rex: { id: string; key: string };
  const as = (key: string) => ({ url: stack.url, key });
  const principal = async (name: string, roles: string[], extra: Record<string, string> = {}) => {
    const res = await api(as(tenant.admin), 'POST', '/v1/principals', { name, kind: 'person', roles, groups: [], ...extra });
    expect(res.status).toBe(201);
    return { id: res.body.id as string, key: res.body.api_key as string };
  };
  const reviewAnswers = async (policyId: string) =>
    (await stack.db.query<{ type: string; data: any }>(`SELECT type, data FROM events WHERE type IN ('PolicyActivationApproved', 'PolicyActivationRejected') AND data->>'policy_id' = $1 AND tenant_id = $2 ORDER BY position`, [policyId, tenant.id])).rows;
  const draftAndActivate = async (id: string) => {
    const doc = { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name: id }, rules: [{ name: 'gate', match: { tool: `${id}_tool` }, decision: 'DENY' }] };
    expect((await api(as(rae.key), 'POST', '/v1/policies', doc)).status).toBe(201);
    const asked = await api(as(rae.key), 'POST', `/v1/policies/${id}/activate`);
    expect(asked.status).toBe(202);
    return asked.body.review_id as string;
  };

  beforeAll(async () => {
    const id = `rev-${RUN}`;
    const res = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id, name: id, settings: { policy_four_eyes: true } });
    expect(res.status).toBe(201);
    tenant = { id, admin: res.body.admin_api_key };
    rae = await principal('Rae', ['admin', 'author'], { slack_user_id: 'U0RAE', email: 'rae@example.test' });
    ray = await principal('Ray', ['admin'], { slack_user_id: 'U0RAY', email: 'ray@example.test' });
    rex = await principal('Rex', ['admin'], { email: 'rex@example.test' });
    await principal('Abe', ['author'], { slack_user_id: 'U0ABE', email: 'abe@example.test' });
  }, 60_000);

  it('a review is notified to the other admins on Slack and answered there through the review path; self-approval, other tenants, other workspaces, forgeries and replays count nothing', async () => {
    const policyId = `slack-review-${RUN}`;
    const reviewId = await draftAndActivate(policyId);
    const msg = await messageTo('U0RAY', reviewId);
    expect(blocksOf(msg)).toContain('policy change to review');
    expect(blocksOf(msg)).toContain(`activate ${policyId} v1`);
    expect(blocksOf(msg)).toContain('countersign_approve');
    expect(blocksOf(msg)).not.toContain('countersign_edit');
    // Neither the requester nor a non-admin is asked; Rex (email only) is asked by email.
    await linkFor('rex@example.test', policyId);
    expect(calls.some((c) => c.method === 'chat.postMessage' && ['U0RAE', 'U0ABE'].includes(String(c.body['channel'])) && blocksOf(c).includes(reviewId))).toBe(false);
    expect(mails.some((m) => (m.to.includes('rae@example.test') || m.to.includes('abe@example.test')) && unqp(m.raw).includes(policyId))).toBe(false);
    // The review is in Ray's inbox as before.
    const inbox = await api(as(ray.key), 'GET', '/v1/approvals');
    expect(inbox.body.items.some((i: any) => i.kind === 'activation_review' && i.review_id === reviewId)).toBe(true);
    const ref = refOf(msg);

    // Another tenant's admin with a Slack account, in the default tenant.
    await addPrincipal(stack, { name: `Out ${RUN}`, roles: ['admin', 'approver'], groups: ['finance'], slack_user_id: 'U0OUT' });
    const good = click({ user: 'U0RAY', action: 'approve', ref });
    const attempts: Array<[string, () => Promise<Response>]> = [
      ['self-approval: the requester clicks the reviewer\'s button', () => { const b = click({ user: 'U0RAE', action: 'approve', ref }); return post(b, signed(b)); }],
      ['self-approval: the requester rejects with a reason', () => { const b = click({ user: 'U0RAE', action: 'reject', ref }); return post(b, signed(b)); }],
      ['a non-admin of the tenant', () => { const b = click({ user: 'U0ABE', action: 'approve', ref }); return post(b, signed(b)); }],
      ['another tenant\'s admin', () => { const b = click({ user: 'U0OUT', action: 'approve', ref }); return post(b, signed(b)); }],
      ['another workspace', () => { const b = click({ team: 'T0EVIL', user: 'U0RAY', action: 'approve', ref }); return post(b, signed(b)); }],
      ['forged signature', () => post(good, signed(good, Math.floor(Date.now() / 1000), 'not-the-secret'))],
      ['approve with edit on a review', () => { const b = click({ user: 'U0RAY', action: 'edit', ref }); return post(b, signed(b)); }],
    ];
    for (const [, send] of attempts) expect([200, 401]).toContain((await send()).status);
    // Even a message addressed to the requester (as if a notice had gone to the wrong person) cannot carry their
    // own approval: the click reaches the review's rules, which refuse it.
    const selfRef = `self${randomUUID().replace(/-/g, '')}`.slice(0, 24);
    await stack.db.query(
      `INSERT INTO channel_slack_messages (ref, tenant_id, decision_id, round, purpose, approver_id, slack_user_id, team_id, level, policy_id) VALUES ($1, $2, $3, 1, 'review', $4, 'U0RAE', $5, 0, $6)`,
      [selfRef, tenant.id, reviewId, rae.id, TEAM, policyId],
    );
    const selfClick = click({ user: 'U0RAE', action: 'approve', ref: selfRef });
    expect((await post(selfClick, signed(selfClick))).status).toBe(200);
    const selfRefusal = await eventually(async () => (await stack.db.query<{ reason: string }>(`SELECT reason FROM channel_answer_log WHERE decision_id = $1 AND actor = 'slack:${TEAM}/U0RAE' AND reason LIKE '%second admin%'`, [reviewId])).rows[0], 20_000, 'self-approval refused by the review');
    expect(selfRefusal.reason).toMatch(/cannot approve or reject it/);
    await eventually(async () => ((await stack.db.query(`SELECT 1 FROM channel_answer_log WHERE decision_id = $1 AND NOT counted`, [reviewId])).rowCount! >= 6 ? true : undefined), 20_000, 'refusals logged');
    expect(await reviewAnswers(policyId)).toEqual([]);
    expect((await api(as(rae.key), 'GET', `/v1/policies/${policyId}`)).body.status).not.toBe('active');

    // Ray's click counts, once, as the API's answer would; replays change nothing.
    const headers = signed(good);
    expect((await post(good, headers)).status).toBe(200);
    await eventually(async () => ((await reviewAnswers(policyId)).length ? true : undefined), 30_000, 'the review approved');
    for (let i = 0; i < 10; i++) await post(good, headers);
    const policy = await eventually(async () => { const p = await api(as(rae.key), 'GET', `/v1/policies/${policyId}`); return p.body.status === 'active' ? p.body : undefined; }, 20_000, 'the policy active');
    expect(policy.active_version).toBe(1);
    const answers = await reviewAnswers(policyId);
    expect(answers).toEqual([expect.objectContaining({ type: 'PolicyActivationApproved', data: expect.objectContaining({ by: ray.id, channel: 'slack' }) })]);
    // Ray's message shows the outcome and loses its buttons.
    const closed = await eventually(async () => calls.find((c) => c.method === 'chat.update' && c.body['channel'] === 'DU0RAY' && /Approved by Ray/.test(String(c.body['text']))), 20_000, 'the message closed');
    expect(blocksOf(closed)).not.toContain('countersign_approve');
    // The email link of the closed review answers nothing.
    const { link } = await linkFor('rex@example.test', policyId);
    expect((await pageOf(link)).status).toBe(409);
    const got = answers.filter((a) => a.data.by !== ray.id).length + (answers.length - 1);
    console.log(`attack review answers from Slack (self-approval twice, self-approval on a message addressed to the requester, non-admin, other tenant, other workspace, forged, edit, 10 replays): ${attempts.length + 1 + 10} attempts, ${got} got through`);
    expect(got).toBe(0);
  }, 120_000);

  it('Reject on a review asks for the reason in a modal; the submitted reason rejects the change', async () => {
    const policyId = `slack-reject-${RUN}`;
    const reviewId = await draftAndActivate(policyId);
    const ref = refOf(await messageTo('U0RAY', reviewId));
    const b = click({ user: 'U0RAY', action: 'reject', ref });
    expect((await post(b, signed(b))).status).toBe(200);
    const opened = await eventually(async () => calls.find((c) => c.method === 'views.open' && JSON.stringify(c.body).includes(ref)), 20_000, 'reason modal');
    const view = typeof opened.body['view'] === 'string' ? JSON.parse(opened.body['view']) : opened.body['view'];
    expect(view).toMatchObject({ callback_id: 'countersign_reject_reason', private_metadata: ref });
    const reason = form({
      type: 'view_submission', team: { id: TEAM, domain: 'test' }, user: { id: 'U0RAY', team_id: TEAM }, api_app_id: 'A1',
      view: { id: 'V1', type: 'modal', callback_id: 'countersign_reject_reason', private_metadata: ref, state: { values: { reason: { reason: { type: 'plain_text_input', value: 'not before the audit' } } } } },
    });
    expect((await post(reason, signed(reason))).status).toBe(200);
    await eventually(async () => ((await reviewAnswers(policyId)).length ? true : undefined), 30_000, 'the review rejected');
    expect(await reviewAnswers(policyId)).toEqual([expect.objectContaining({ type: 'PolicyActivationRejected', data: expect.objectContaining({ by: ray.id, comment: 'not before the audit', channel: 'slack' }) })]);
    expect((await api(as(rae.key), 'GET', `/v1/policies/${policyId}`)).body.active_version).toBeNull();
    await eventually(async () => calls.find((c) => c.method === 'chat.update' && c.body['channel'] === 'DU0RAY' && blocksOf(c).includes(reviewId) && /Rejected by Ray/.test(String(c.body['text']))), 20_000, 'the message closed');
  }, 120_000);

  it('a review is answered from the emailed link through the same path; forged forms and the requester count nothing', async () => {
    const policyId = `mail-review-${RUN}`;
    const reviewId = await draftAndActivate(policyId);
    const { link, mail } = await linkFor('rex@example.test', policyId);
    expect(mail).toContain(`activate ${policyId} v1`);
    expect(mail).toContain(reviewId);
    const page = await pageOf(link);
    expect(page.status).toBe(200);
    expect(page.body).toContain('policy change to review');
    expect(page.body).not.toContain('edited_args');
    const forged = [
      await postForm(link, { decision_id: reviewId, round: '1', verdict: 'approve' }),
      await postForm(link, { csrf: 'x'.repeat(43), decision_id: reviewId, round: '1', verdict: 'approve' }),
    ];
    expect(forged.map((r) => r.status)).toEqual([403, 403]);
    // The requester cannot answer through the API either (the same rule the email answer meets).
    expect((await api(as(rae.key), 'POST', `/v1/policies/${policyId}/activation/approvals`, { verdict: 'approve' })).status).toBe(409);
    expect(await reviewAnswers(policyId)).toEqual([]);

    const res = await postForm(link, { csrf: page.csrf, decision_id: reviewId, round: '1', verdict: 'approve', comment: 'looks right' });
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/Answer counted/);
    expect(await reviewAnswers(policyId)).toEqual([expect.objectContaining({ type: 'PolicyActivationApproved', data: expect.objectContaining({ by: rex.id, comment: 'looks right', channel: 'email' }) })]);
    expect((await api(as(rae.key), 'GET', `/v1/policies/${policyId}`)).body.status).toBe('active');
    // Used: the link answers nothing more; Ray's Slack message of this review closes.
    expect((await postForm(link, { csrf: page.csrf, decision_id: reviewId, round: '1', verdict: 'reject' })).status).toBe(404);
    await eventually(async () => calls.find((c) => c.method === 'chat.update' && c.body['channel'] === 'DU0RAY' && blocksOf(c).includes(reviewId) && /Approved by Rex/.test(String(c.body['text']))), 20_000, "Ray's message closed");
    const got = (await reviewAnswers(policyId)).length - 1;
    console.log(`attack review answers by email (no CSRF, forged CSRF, the requester, a used link): 4 attempts, ${got} got through`);
    expect(got).toBe(0);
  }, 120_000);
});

describe('platform policy reviews on Slack and by email', () => {
  // The platform's reviewers are platform admins, who live in tenants of their own: each is told on its own
  // channels, in its home tenant's rows, and its answer reaches the platform's review.
  let ops: { id: string; key: string; tenant: string };
  let ray: { id: string; key: string; tenant: string };
  const platform = () => ({ url: stack.url, key: stack.bootstrapKey });
  const answersOf = async (policyId: string) =>
    (await stack.db.query<{ type: string; data: any }>(`SELECT type, data FROM events WHERE type IN ('PolicyActivationApproved', 'PolicyActivationRejected') AND data->>'policy_id' = $1 AND tenant_id = ':platform' ORDER BY position`, [policyId])).rows;
  const askReview = async (id: string) => {
    const doc = { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name: id }, scope: { level: 'platform' }, rules: [{ name: 'gate', match: { tool: `${id}_tool` }, decision: 'DENY' }] };
    expect((await api(platform(), 'POST', '/v1/platform/policies', doc)).status).toBe(201);
    const asked = await api(platform(), 'POST', `/v1/platform/policies/${id}/activate`);
    expect(asked.status, JSON.stringify(asked.body)).toBe(202);
    return asked.body.review_id as string;
  };

  beforeAll(async () => {
    // A second platform admin (as an operator's tooling makes one), at home in a tenant of its own, on Slack and email.
    const tenant = `pr_ops_${RUN}`;
    const second = await ensureBootstrap(stack.db, { tenantId: tenant, keyFile: path.join(mkdtempSync(path.join(tmpdir(), 'cs-pr-')), 'key') });
    const me = await api({ url: stack.url, key: second.token! }, 'GET', '/v1/me');
    expect(me.body.platform_admin).toBe(true);
    ops = { id: me.body.id, key: second.token!, tenant };
    const patched = await api({ url: stack.url, key: ops.key }, 'PATCH', `/v1/principals/${ops.id}`, { slack_user_id: 'U0OPS', email: 'ops@example.test' });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    // A tenant admin (not a platform admin) on Slack: may not answer a platform review.
    const t = `pr-ten-${RUN}`;
    const made = await api(platform(), 'POST', '/v1/tenants', { id: t, name: t });
    const p = await api({ url: stack.url, key: made.body.admin_api_key }, 'POST', '/v1/principals', { name: 'Tina', kind: 'person', roles: ['admin'], slack_user_id: 'U0TINA', email: 'tina@example.test' });
    ray = { id: p.body.id, key: p.body.api_key, tenant: t };
    expect((await api(platform(), 'PATCH', '/v1/platform/settings', { policy_four_eyes: true })).status).toBe(200);
  }, 60_000);
  afterAll(async () => {
    await api(platform(), 'PATCH', '/v1/platform/settings', { policy_four_eyes: false });
  });

  it('notifies the other platform admins on Slack and by email, and counts a platform admin\'s click; tenant admins count nothing', async () => {
    const policyId = `plat-slack-${RUN}`;
    const reviewId = await askReview(policyId);
    const msg = await messageTo('U0OPS', reviewId);
    expect(blocksOf(msg)).toContain(`activate ${policyId} v1`);
    await linkFor('ops@example.test', policyId);
    // The message lives in the reviewer's home tenant.
    const row = (await stack.db.query<{ tenant_id: string; purpose: string }>('SELECT tenant_id, purpose FROM channel_slack_messages WHERE ref = $1', [refOf(msg)])).rows[0];
    expect(row).toEqual({ tenant_id: ops.tenant, purpose: 'platform_review' });
    // Tenant admins are not asked.
    expect(calls.some((c) => c.method === 'chat.postMessage' && c.body['channel'] === 'U0TINA' && blocksOf(c).includes(reviewId))).toBe(false);

    // A message of this review addressed to a tenant admin (as if a notice had gone to the wrong person), clicked
    // by them; the platform admin's message clicked by the tenant admin; both count nothing.
    const tinaRef = `tina${randomUUID().replace(/-/g, '')}`.slice(0, 24);
    await stack.db.query(
      `INSERT INTO channel_slack_messages (ref, tenant_id, decision_id, round, purpose, approver_id, slack_user_id, team_id, level, policy_id) VALUES ($1, $2, $3, 1, 'platform_review', $4, 'U0TINA', $5, 0, $6)`,
      [tinaRef, ray.tenant, reviewId, ray.id, TEAM, policyId],
    );
    const attempts: Array<[string, string]> = [
      ['a tenant admin on a message addressed to them', click({ user: 'U0TINA', action: 'approve', ref: tinaRef })],
      ['a tenant admin on the platform admin\'s message', click({ user: 'U0TINA', action: 'approve', ref: refOf(msg) })],
    ];
    for (const [, b] of attempts) expect((await post(b, signed(b))).status).toBe(200);
    await eventually(async () => (await stack.db.query<{ reason: string }>(`SELECT reason FROM channel_answer_log WHERE decision_id = $1 AND reason LIKE '%only a platform admin%'`, [reviewId])).rows[0], 20_000, 'the tenant admin refused by the review');
    await eventually(async () => ((await stack.db.query(`SELECT 1 FROM channel_answer_log WHERE decision_id = $1 AND NOT counted`, [reviewId])).rowCount! >= 2 ? true : undefined), 20_000, 'refusals logged');
    const through = (await answersOf(policyId)).length;

    const good = click({ user: 'U0OPS', action: 'approve', ref: refOf(msg) });
    expect((await post(good, signed(good))).status).toBe(200);
    await eventually(async () => ((await answersOf(policyId)).length ? true : undefined), 30_000, 'the review approved');
    expect(await answersOf(policyId)).toEqual([expect.objectContaining({ type: 'PolicyActivationApproved', data: expect.objectContaining({ by: ops.id, channel: 'slack' }) })]);
    expect((await api(platform(), 'GET', `/v1/platform/policies/${policyId}`)).body.status).toBe('active');
    // The message shows the outcome (the approver's name, from their home tenant) and loses its buttons; the emailed link answers nothing.
    const closed = await eventually(async () => calls.find((c) => c.method === 'chat.update' && c.body['channel'] === 'DU0OPS' && blocksOf(c).includes(reviewId) && /Approved by bootstrap admin/.test(String(c.body['text']))), 20_000, 'the message closed');
    expect(blocksOf(closed)).not.toContain('countersign_approve');
    expect((await pageOf((await linkFor('ops@example.test', policyId)).link)).status).toBe(409);
    console.log(`attack platform review answered by a tenant admin on Slack: ${attempts.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 120_000);

  it('a platform review is answered from the emailed link, recorded with its channel', async () => {
    const policyId = `plat-mail-${RUN}`;
    const reviewId = await askReview(policyId);
    const { link } = await linkFor('ops@example.test', policyId);
    const page = await pageOf(link);
    expect(page.status).toBe(200);
    expect(page.body).toContain('policy change to review');
    const res = await postForm(link, { csrf: page.csrf, decision_id: reviewId, round: '1', verdict: 'reject', comment: 'not this quarter' });
    expect(res.status).toBe(200);
    expect(await answersOf(policyId)).toEqual([expect.objectContaining({ type: 'PolicyActivationRejected', data: expect.objectContaining({ by: ops.id, channel: 'email', comment: 'not this quarter' }) })]);
  }, 120_000);
});

describe('approver context and approve with edit on Slack and email', () => {
  let bot: { id: string; key: string };
  let ann: { id: string; key: string };
  const as = (key: string) => ({ url: stack.url, key });
  const grants = async (id: string) => (await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE stream_id = $1 AND type = 'ApprovalGranted'`, [`run/${id}`])).rows.map((r) => r.data);
  const ask = async (amount: number, tool = 'chan_refund_tool') => {
    const args = { order: `o-${randomUUID().slice(0, 6)}`, amount };
    const res = await api(as(bot.key), 'POST', '/v1/decisions', { agent: { id: 'chan-bot' }, action: { tool, operation: 'Refund', args }, idempotency_key: randomUUID() });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return { ...(res.body as { decision_id: string; decision: string }), args };
  };
  const viewOf = (c: SlackCall) => (typeof c.body['view'] === 'string' ? JSON.parse(c.body['view']) : c.body['view']);
  const openEdit = async (id: string) => {
    const ref = refOf(await messageTo('U0ANN', id));
    const b = click({ user: 'U0ANN', action: 'edit', ref });
    expect((await post(b, signed(b))).status).toBe(200);
    const opened = await eventually(async () => calls.find((c) => c.method === 'views.open' && JSON.stringify(c.body).includes(id)), 20_000, 'edit modal');
    return { ref, view: viewOf(opened) };
  };

  beforeAll(async () => {
    await activateYaml(stack, POLICY);
    bot = await addPrincipal(stack, { name: 'chan-bot', kind: 'agent', roles: ['agent'] });
    ann = await addPrincipal(stack, { name: 'Ann', roles: ['approver'], groups: ['finance'], slack_user_id: 'U0ANN', email: 'ann@example.test' });
    await addPrincipal(stack, { name: 'Bob', roles: ['approver'], groups: ['finance'], slack_user_id: 'U0BOB', email: 'bob@example.test' });
  }, 60_000);

  it('each approval message shows the constraints that will apply and the agent\'s recent history for the tool, on Slack and by email', async () => {
    const earlier = await ask(100);
    expect(earlier.decision).toBe('ALLOW');
    expect((await api(as(bot.key), 'POST', `/v1/decisions/${earlier.decision_id}/outcome`, { status: 'succeeded', output: null })).status).toBe(200);
    const now = await ask(650);
    expect(now.decision).toBe('REQUIRE_APPROVAL');
    const shown = blocksOf(await messageTo('U0ANN', now.decision_id));
    expect(shown).toContain('Constraints that will apply once approved');
    expect(shown).toContain('max‗runtime‗sec: 600');
    expect(shown).toContain('Recent decisions of chan-bot for this tool');
    expect(shown).toMatch(/Refund: ALLOW \(policy\), outcome succeeded, asked /);
    expect(shown).not.toContain(earlier.decision_id);
    expect(shown).toContain('countersign_edit');
    const { mail } = await linkFor('ann@example.test', now.decision_id);
    expect(mail).toContain('Constraints that will apply once approved');
    expect(mail).toContain('max_runtime_sec: 600');
    expect(mail).toMatch(/Refund: ALLOW \(policy\), outcome succeeded, asked /);
    // The same data as the inbox.
    const inbox = await api(as(ann.key), 'GET', '/v1/approvals');
    const item = inbox.body.items.find((i: any) => i.decision_id === now.decision_id);
    expect(item.constraints).toEqual({ max_runtime_sec: 600 });
    expect(item.history[0]).toMatchObject({ decision_id: earlier.decision_id, outcome: 'succeeded' });
    // A rule that forbids edits gets no edit button.
    const wipe = await ask(650, 'chan_wipe_tool');
    expect(blocksOf(await messageTo('U0ANN', wipe.decision_id))).not.toContain('countersign_edit');
  }, 120_000);

  it('an edit from the Slack modal counts (the waiting agent gets the edited arguments); a looser one is a field error; forged, replayed, foreign and oversized submissions count nothing', async () => {
    const run = await ask(650);
    const waiting = api(as(bot.key), 'GET', `/v1/decisions/${run.decision_id}?wait=60`);
    const { view } = await openEdit(run.decision_id);
    expect(view.callback_id).toBe('countersign_edit_args');
    const input = view.blocks.find((b: any) => b.block_id === 'args').element;
    const args = JSON.parse(input.initial_value);
    expect(args.amount).toBe(650);
    const metadata = view.private_metadata as string;

    const submit = (a: unknown, opts: { user?: string; team?: string; metadata?: string } = {}) => {
      const b = editSubmission({ user: opts.user ?? 'U0ANN', team: opts.team, metadata: opts.metadata ?? metadata, args: typeof a === 'string' ? a : JSON.stringify(a) });
      return post(b, signed(b));
    };
    const fieldError = async (res: Response) => {
      expect(res.status).toBe(200);
      const body = await res.json() as { response_action: string; errors: { args: string } };
      expect(body.response_action).toBe('errors');
      return body.errors.args;
    };
    // Looser (ALLOW by rule small) and wider (asks the cfo too): refused in the modal, nothing counted.
    expect(await fieldError(await submit({ ...args, amount: 100 }))).toMatch(/looser/);
    expect(await fieldError(await submit({ ...args, amount: 3000 }))).toMatch(/cfo/);
    const parts = metadata.split('.');
    const other = await ask(700);
    const otherRef = refOf(await messageTo('U0ANN', other.decision_id));
    const attacks: Array<[string, () => Promise<Response>]> = [
      ['flipped MAC', () => submit({ ...args, amount: 600 }, { metadata: [...parts.slice(0, 4), `${parts[4]!.slice(0, -2)}AA`].join('.') })],
      ['metadata sealed for Ann submitted by Bob', () => submit({ ...args, amount: 600 }, { user: 'U0BOB' })],
      ['metadata moved to another message', () => submit({ ...args, amount: 600 }, { metadata: [otherRef, ...parts.slice(1)].join('.') })],
      ['another round in the metadata', () => submit({ ...args, amount: 600 }, { metadata: [parts[0], parts[1], '2', ...parts.slice(3)].join('.') })],
      ['another workspace', () => submit({ ...args, amount: 600 }, { team: 'T0EVIL' })],
      ['another tenant\'s Slack user', () => submit({ ...args, amount: 600 }, { user: 'U0OUT' })],
      ['not JSON', () => submit('{"amount": 600')],
      ['an array', () => submit('[1,2]')],
      ['oversized', () => submit({ ...args, pad: 'x'.repeat(70_000) })],
      ['bad signature', () => { const b = editSubmission({ user: 'U0ANN', metadata, args: JSON.stringify({ ...args, amount: 600 }) }); return post(b, signed(b, Math.floor(Date.now() / 1000), 'wrong')); }],
    ];
    for (const [name, send] of attacks) {
      const res = await send();
      expect({ name, ok: [200, 401, 413].includes(res.status) }).toEqual({ name, ok: true });
      if (res.status === 200) expect({ name, action: ((await res.json()) as { response_action?: string }).response_action }).toEqual({ name, action: 'errors' });
    }
    expect(await grants(run.decision_id)).toEqual([]);

    // The rightful edit counts, once; the agent's long-poll gets the edited arguments.
    const edited = { ...args, amount: 600 };
    const good = editSubmission({ user: 'U0ANN', metadata, args: JSON.stringify(edited) });
    const headers = signed(good);
    const res = await post(good, headers);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
    const final = (await waiting).body;
    expect(final).toMatchObject({ status: 'final', decision: 'ALLOW_WITH_CONSTRAINTS', edited_args: edited, edited_args_digest: sha256Digest(edited) });
    for (let i = 0; i < 10; i++) await post(good, headers);
    await new Promise((r) => setTimeout(r, 500));
    const counted = await grants(run.decision_id);
    expect(counted).toEqual([expect.objectContaining({ approver_id: ann.id, channel: 'slack', edit: expect.objectContaining({ args_digest: sha256Digest(edited) }) })]);
    await eventually(async () => calls.find((c) => c.method === 'chat.update' && c.body['channel'] === 'DU0ANN' && /Approved with edited arguments by Ann/.test(String(c.body['text']))), 20_000, 'message shows the edit');
    expect(await grants(other.decision_id)).toEqual([]);
    const got = counted.length - 1 + (await grants(other.decision_id)).length;
    console.log(`attack Slack edit submissions (looser, wider, forged MAC, other user, other message, other round, other workspace, other tenant, not JSON, array, oversized, bad signature, 10 replays): ${2 + attacks.length + 10} attempts, ${got} got through`);
    expect(got).toBe(0);
    // A round whose rule forbids edits opens no edit modal.
    const wipe = await ask(650, 'chan_wipe_tool');
    const wipeRef = refOf(await messageTo('U0ANN', wipe.decision_id));
    const b = click({ user: 'U0ANN', action: 'edit', ref: wipeRef });
    expect((await post(b, signed(b))).status).toBe(200);
    await eventually(async () => ((await stack.db.query(`SELECT 1 FROM channel_answer_log WHERE decision_id = $1 AND reason LIKE '%does not allow%'`, [wipe.decision_id])).rowCount ? true : undefined), 20_000, 'edit refused on a no-edit rule');
    expect(calls.some((c) => c.method === 'views.open' && JSON.stringify(c.body).includes(wipe.decision_id))).toBe(false);
  }, 120_000);

  it('the emailed page approves with an edit on the same link: a looser edit is shown for correction and leaves the link usable; forged and oversized forms count nothing', async () => {
    const run = await ask(800);
    const waiting = api(as(bot.key), 'GET', `/v1/decisions/${run.decision_id}?wait=60`);
    const { link } = await linkFor('bob@example.test', run.decision_id);
    const page = await pageOf(link);
    expect(page.status).toBe(200);
    expect(page.body).toContain('name="edited_args"');
    expect(page.body).toContain('&quot;amount&quot;: 800');
    expect(page.digest).toBe(sha256Digest(run.args));
    const base = { csrf: page.csrf, decision_id: run.decision_id, round: '1', args_digest: page.digest, verdict: 'approve_edit' };
    const { order } = run.args;
    const looser = await postForm(link, { ...base, edited_args: JSON.stringify({ order, amount: 100 }) });
    expect(looser.status).toBe(409);
    expect(await looser.text()).toMatch(/Not counted.*looser/s);
    const attacks = [
      await postForm(link, { ...base, csrf: '', edited_args: JSON.stringify({ order, amount: 700 }) }),
      await postForm(link, { ...base, csrf: 'A'.repeat(43), edited_args: JSON.stringify({ order, amount: 700 }) }),
      await postForm(link, { ...base, edited_args: 'not json' }),
      await postForm(link, { ...base, edited_args: JSON.stringify({ order, amount: 700, pad: 'x'.repeat(70_000) }) }),
      await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' }, body: new URLSearchParams({ ...base, edited_args: JSON.stringify({ order, amount: 700 }) }).toString() }),
    ];
    expect(attacks.map((r) => r.status)).toEqual([403, 403, 409, 413, 403]);
    expect(await grants(run.decision_id)).toEqual([]);
    // The link is still usable: the corrected edit counts.
    const edited = { order, amount: 700 };
    const ok = await postForm(link, { ...base, edited_args: JSON.stringify(edited) });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/Approved with edited arguments by Bob/);
    expect((await waiting).body).toMatchObject({ status: 'final', edited_args: edited });
    expect((await postForm(link, { ...base, edited_args: JSON.stringify(edited) })).status).toBe(404);
    const counted = await grants(run.decision_id);
    expect(counted).toHaveLength(1);
    expect(counted[0]).toMatchObject({ channel: 'email', edit: { args_digest: sha256Digest(edited) } });
    const got = counted.length - 1;
    console.log(`attack email edit forms (looser, no CSRF, forged CSRF, not JSON, oversized, other origin, a used link): 7 attempts, ${got} got through`);
    expect(got).toBe(0);
  }, 120_000);
});
