import type { Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slackSignature } from '../../services/channels/slack-signature.ts';
import { activateYaml, addPrincipal, api, eventually, startProcess, startTestStack, type TestStack } from './harness.ts';
import { slackStandIn, type SlackCall } from './slack-stand-in.ts';

const SECRET = 'slack-signing-secret-under-test-0123456789';
const TEAM = 'T0COUNTER';

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: slack-channel-test, name: Slack approvals under test }
scope: { level: tenant }
rules:
  - name: deploy-needs-sre
    match: { tool: deploy_tool }
    decision: REQUIRE_APPROVAL
    reason: deploys need an SRE
    approval: { approvers: [sre], quorum: 1, timeout: 1h }
  - name: restart-needs-two
    match: { tool: restart_tool }
    decision: REQUIRE_APPROVAL
    reason: restarts need two SREs, quickly
    approval: { approvers: [sre], quorum: 2, timeout: 8s }
`;

const HOSTILE = '<!channel> <!here> @everyone see <http://evil.example|your bank> https://evil.example/x <@U0BOSS> \u200b\u200dzw \u202eRTL\u202c <b>bold</b> *Approved by CEO*';

type Call = SlackCall;


function payload(opts: { team?: string; user: string; verdict: 'approve' | 'reject'; ref: string }): string {
  const p = {
    type: 'block_actions',
    team: { id: opts.team ?? TEAM, domain: 'test' },
    user: { id: opts.user, team_id: opts.team ?? TEAM },
    api_app_id: 'A1',
    trigger_id: randomUUID(),
    actions: [{ type: 'button', action_id: `countersign_${opts.verdict}`, block_id: 'countersign_answer', value: opts.ref, action_ts: `${Date.now() / 1000}` }],
  };
  return new URLSearchParams({ payload: JSON.stringify(p) }).toString();
}

/** The submission of the modal the Reject button opens: the reason is the answer's comment. */
function reasonPayload(opts: { team?: string; user: string; ref: string; reason: string }): string {
  const p = {
    type: 'view_submission',
    team: { id: opts.team ?? TEAM, domain: 'test' },
    user: { id: opts.user, team_id: opts.team ?? TEAM },
    api_app_id: 'A1',
    view: { id: 'V1', type: 'modal', callback_id: 'countersign_reject_reason', private_metadata: opts.ref, state: { values: { reason: { reason: { type: 'plain_text_input', value: opts.reason } } } } },
  };
  return new URLSearchParams({ payload: JSON.stringify(p) }).toString();
}

describe('Slack approvals: only a correctly signed, fresh click by the rightful approver counts', () => {
  let stack: TestStack;
  let slack: Server;
  const calls: Call[] = [];
  let requester: { id: string; key: string };
  let sam: { id: string; key: string };
  let gus: { id: string; key: string };
  let sue: { id: string; key: string };

  const post = (body: string, headers: Record<string, string>) =>
    fetch(`${stack.url}/v1/slack/interactions`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
  const signed = (body: string, ts = Math.floor(Date.now() / 1000), secret = SECRET) => ({ 'x-slack-request-timestamp': String(ts), 'x-slack-signature': slackSignature(secret, String(ts), body) });
  const answers = async (id: string) =>
    (await stack.db.query<{ type: string; data: any }>(`SELECT type, data FROM events WHERE stream_id = $1 AND type IN ('ApprovalGranted', 'ApprovalRejected') ORDER BY stream_version`, [`run/${id}`])).rows;

  beforeAll(async () => {
    slack = slackStandIn(calls, TEAM);
    await new Promise<void>((r) => slack.listen(0, '127.0.0.1', () => r()));
    stack = await startTestStack({
      COUNTERSIGN_SLACK_SIGNING_SECRET: SECRET,
      COUNTERSIGN_SLACK_BOT_TOKEN: 'xoxb-test-token',
      COUNTERSIGN_SLACK_API_URL: `http://127.0.0.1:${(slack.address() as { port: number }).port}/api/`,
    });
    await activateYaml(stack, POLICY);
    // The requester is a person who is also an SRE approver: never notified, never counted on their own request.
    requester = await addPrincipal(stack, { name: 'Rita', roles: ['agent', 'approver'], groups: ['sre'], slack_user_id: 'U0RITA', agent_id: 'deploy-bot' });
    sam = await addPrincipal(stack, { name: 'Sam', roles: ['approver'], groups: ['sre'], slack_user_id: 'U0SAM' });
    sue = await addPrincipal(stack, { name: 'Sue', roles: ['approver'], groups: ['sre'], slack_user_id: 'U0SUE' });
    gus = await addPrincipal(stack, { name: 'Gus', roles: ['approver'], groups: ['sre'], slack_user_id: 'U0GONE' });
    await addPrincipal(stack, { name: 'Otto', roles: ['approver'], groups: ['marketing'], slack_user_id: 'U0OTTO' });
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
    slack?.close();
  });

  it('posts escaped Block Kit, refuses every forged, stale, replayed or wrong-person click, and counts the rightful one once', async () => {
    const res = await api({ url: stack.url, key: requester.key }, 'POST', '/v1/decisions', {
      agent: { id: 'deploy-bot' }, action: { tool: 'deploy_tool', operation: 'Deploy', args: { service: 'api', note: HOSTILE } }, idempotency_key: randomUUID(),
    });
    expect(res.body).toMatchObject({ decision: 'REQUIRE_APPROVAL', status: 'pending_approval' });
    const id = res.body.decision_id as string;

    const msg = await eventually(async () => calls.find((c) => c.method === 'chat.postMessage' && c.body['channel'] === 'U0SAM'), 30_000, 'Slack message to Sam');
    expect(calls.some((c) => c.method === 'chat.postMessage' && c.body['channel'] === 'U0RITA')).toBe(false);
    const shown = JSON.stringify(msg.body['blocks']);
    expect(shown).toContain(id);
    expect(shown).toContain('deploy-needs-sre');
    expect(shown).toContain('slack-channel-test v1');
    expect(shown).toContain('countersign_approve');
    // Hostile text: escaped, no mentions or links, no invisible or bidi characters.
    for (const bad of ['<!channel>', '<!here>', '<http', '<@U0BOSS>', 'http://', 'https://', '@everyone', '\u200b', '\u200d', '\u202e', '<b>', '*Approved by CEO*']) expect(shown).not.toContain(bad);
    expect(shown).toContain('&lt;');
    expect(msg.body['text']).not.toMatch(/<!|\u202e/);
    // Each delivery is recorded; a channel that fails is a NotificationFailed, never a failed run.
    const notes = await eventually(async () => {
      const rows = (await stack.db.query<{ type: string; data: any }>(`SELECT type, data FROM events WHERE stream_id = $1 AND type IN ('NotificationSent', 'NotificationFailed') AND data->>'channel' = 'slack'`, [`run/${id}`])).rows;
      return rows.length >= 2 ? rows : undefined;
    }, 30_000, 'slack notification events');
    expect(notes).toEqual(expect.arrayContaining([
      expect.objectContaining({ type: 'NotificationSent', data: expect.objectContaining({ recipient: sam.id }) }),
      expect.objectContaining({ type: 'NotificationFailed', data: expect.objectContaining({ recipient: gus.id, error: expect.stringMatching(/channel_not_found/) }) }),
    ]));
    const ref = (msg.body['blocks'] as any[]).find((b) => b.type === 'actions').elements[0].value as string;

    const good = payload({ user: 'U0SAM', verdict: 'approve', ref });
    const now = () => Math.floor(Date.now() / 1000);
    const flip = (sig: string) => sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0');
    const reserialised = new URLSearchParams({ payload: JSON.stringify(JSON.parse(new URLSearchParams(good).get('payload')!), null, 1) }).toString();
    const adversarial: Array<[string, () => Promise<Response>, number]> = [
      ['wrong secret', () => post(good, signed(good, now(), 'another-secret')), 401],
      ['flipped bit', () => post(good, { ...signed(good), 'x-slack-signature': flip(signed(good)['x-slack-signature']) }), 401],
      ['missing timestamp', () => post(good, { 'x-slack-signature': signed(good)['x-slack-signature'] }), 401],
      ['missing signature', () => post(good, { 'x-slack-request-timestamp': String(now()) }), 401],
      ['no headers', () => post(good, {}), 401],
      ['re-serialised body', () => post(reserialised, signed(good)), 401],
      ['body re-encoded', () => post(good.replace(/%22/g, '"'), signed(good)), 401],
      ['stale by 301 s', () => post(good, signed(good, now() - 301)), 401],
      ['future by 301 s', () => post(good, signed(good, now() + 301)), 401],
      ['stale by a day', () => post(good, signed(good, now() - 86_400)), 401],
      ['non-approver click', () => { const b = payload({ user: 'U0OTTO', verdict: 'approve', ref }); return post(b, signed(b)); }, 200],
      ['requester click', () => { const b = payload({ user: 'U0RITA', verdict: 'approve', ref }); return post(b, signed(b)); }, 200],
      ['unknown Slack user', () => { const b = payload({ user: 'U0NOBODY', verdict: 'approve', ref }); return post(b, signed(b)); }, 200],
      ['another workspace', () => { const b = payload({ team: 'T0EVIL', user: 'U0SAM', verdict: 'approve', ref }); return post(b, signed(b)); }, 200],
      ['unknown message ref', () => { const b = payload({ user: 'U0SAM', verdict: 'approve', ref: 'x'.repeat(24) }); return post(b, signed(b)); }, 200],
      ['not our action', () => { const b = good.replace('countersign_approve', 'countersign_bogus'); return post(b, signed(b)); }, 200],
    ];
    for (const [name, send, status] of adversarial) expect({ name, status: (await send()).status }).toEqual({ name, status });
    // Let the acknowledged-but-refused clicks finish: each updates the message saying why it did not count.
    await eventually(async () => (calls.filter((c) => c.method === 'chat.update').length >= 4 ? true : undefined), 30_000, 'refusal updates');
    const refusals = calls.filter((c) => c.method === 'chat.update').map((c) => String(c.body['text']));
    expect(refusals.every((t) => /not counted/.test(t))).toBe(true);
    expect(refusals.join('\n')).toMatch(/another Slack workspace/);
    expect(await answers(id)).toEqual([]);

    // The rightful click, 240 s old (inside the window), counts once; 100 replays (50 at once) are acknowledged
    // and change nothing (replays that arrive after the window closes are refused outright).
    const ts = now() - 240;
    const headers = signed(good, ts);
    expect((await post(good, headers)).status).toBe(200);
    await eventually(async () => ((await answers(id)).length ? true : undefined), 30_000, 'approval');
    const replays = await Promise.all(Array.from({ length: 50 }, () => post(good, headers)));
    for (let i = 0; i < 50; i++) replays.push(await post(good, headers));
    expect(replays.filter((r) => r.status !== 200)).toEqual([]);
    const final = await api(stack, 'GET', `/v1/decisions/${id}?wait=20`);
    expect(final.body).toMatchObject({ decision: 'ALLOW', status: 'final' });
    await new Promise((r) => setTimeout(r, 1_000));
    const counted = await answers(id);
    expect(counted).toHaveLength(1);
    expect(counted[0]).toMatchObject({ type: 'ApprovalGranted', data: { approver_id: sam.id, channel: 'slack' } });
    const decided = await eventually(async () => calls.find((c) => c.method === 'chat.update' && /Approved by Sam/.test(String(c.body['text']))), 10_000, 'message shows who decided');
    expect(JSON.stringify(decided.body['blocks'])).not.toContain('countersign_approve');
    // Sue's message for the same round shows it is closed, and loses its buttons.
    const sueUpdate = await eventually(async () => calls.find((c) => c.method === 'chat.update' && c.body['channel'] === 'DU0SUE'), 10_000, "Sue's message closed");
    expect(String(sueUpdate.body['text'])).toMatch(/Round 1 is approved: approved by Sam \(slack\)/);
    expect(JSON.stringify(sueUpdate.body['blocks'])).not.toContain('countersign_approve');

    const adversarialCount = adversarial.length + 100;
    const countedAdversarial = counted.filter((a) => a.data.approver_id !== sam.id).length + (counted.length - 1);
    // Each signed case is recorded as refused against the decision (or without a tenant); the 10 with a bad
    // signature, which anyone can send, write nothing and are counted by a metric.
    const log = await eventually(async () => {
      const rows = (await stack.db.query<{ counted: boolean; reason: string; decision_id: string | null }>(`SELECT counted, reason, decision_id FROM channel_answer_log WHERE channel = 'slack'`)).rows;
      return rows.length >= adversarialCount - 10 + 1 ? rows : undefined;
    }, 20_000, 'answer log');
    expect(log.filter((r) => r.counted)).toHaveLength(1);
    expect(log.filter((r) => !r.counted)).toHaveLength(adversarialCount - 10);
    expect(log.filter((r) => /replayed payload/.test(r.reason))).toHaveLength(100);
    expect(log.filter((r) => /signature/.test(r.reason))).toHaveLength(0);
    expect(await (await fetch(`${stack.url}/metrics`)).text()).toMatch(/countersign_channel_refusals_total\{channel="slack",reason="signature"\} 10\b/);
    console.log(`slack adversarial cases: ${adversarialCount}, counted: ${countedAdversarial}, recorded as refused: ${log.filter((r) => !r.counted).length}`);
    expect(countedAdversarial).toBe(0);
  }, 120_000);
  const ask = async (tool: string) => {
    const res = await api({ url: stack.url, key: requester.key }, 'POST', '/v1/decisions', { agent: { id: 'deploy-bot' }, action: { tool, operation: 'Run', args: { service: 'api' } }, idempotency_key: randomUUID() });
    expect(res.body).toMatchObject({ decision: 'REQUIRE_APPROVAL' });
    return res.body.decision_id as string;
  };
  const messageTo = (user: string, id: string, purpose = /Approval requested/) => eventually(async () => calls.find((c) => c.method === 'chat.postMessage' && c.body['channel'] === user
    && JSON.stringify(c.body['blocks']).includes(id) && purpose.test(JSON.stringify(c.body['blocks']))), 30_000, `message to ${user} about ${id}`);
  const refOf = (m: Call) => (m.body['blocks'] as any[]).find((b) => b.type === 'actions').elements[0].value as string;
  const updatesOf = (id: string) => calls.filter((c) => c.method === 'chat.update' && JSON.stringify(c.body['blocks'] ?? '').includes(id));
  const events = async (id: string, type: string) => (await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE stream_id = $1 AND type = $2 ORDER BY stream_version`, [`run/${id}`, type])).rows.map((r) => r.data);

  it('a round closed by an answer from the API, or by expiry, shows its final state on every Slack message; reminders reach only those who have not answered', async () => {
    // Closed from the API: both approvers' messages show who decided and on which channel, without buttons.
    const a = await ask('deploy_tool');
    await messageTo('U0SAM', a);
    await messageTo('U0SUE', a);
    expect((await api({ url: stack.url, key: sam.key }, 'POST', `/v1/decisions/${a}/approvals`, { verdict: 'approve' })).status).toBe(200);
    const closedA = await eventually(async () => {
      const u = updatesOf(a);
      return ['DU0SAM', 'DU0SUE'].every((ch) => u.some((c) => c.body['channel'] === ch)) ? u : undefined;
    }, 30_000, 'closing notices for an API answer');
    for (const u of closedA) {
      expect(String(u.body['text'])).toMatch(/Round 1 is approved: approved by Sam \(api\)/);
      expect(JSON.stringify(u.body['blocks'])).not.toContain('countersign_approve');
    }

    // Quorum 2 in 8 s: Sam answers at once; the reminder (25% before the deadline) goes to Sue only (and
    // fails for Gus, recorded); at the deadline the round expires and every message of it says so.
    const b = await ask('restart_tool');
    await messageTo('U0SAM', b);
    expect((await api({ url: stack.url, key: sam.key }, 'POST', `/v1/decisions/${b}/approvals`, { verdict: 'approve' })).status).toBe(200);
    const reminder = await messageTo('U0SUE', b, /Reminder/);
    expect(JSON.stringify(reminder.body['blocks'])).toContain('countersign_approve');
    const reminders = await eventually(async () => {
      const rows = (await events(b, 'NotificationSent')).concat(await events(b, 'NotificationFailed')).filter((d) => d.purpose === 'reminder');
      return rows.length >= 2 ? rows : undefined;
    }, 30_000, 'reminder events');
    expect(reminders.map((d) => d.recipient).sort()).toEqual([gus.id, sue.id].sort());
    expect(calls.some((c) => c.method === 'chat.postMessage' && c.body['channel'] === 'U0SAM' && /Reminder/.test(JSON.stringify(c.body['blocks'])))).toBe(false);
    const final = await api(stack, 'GET', `/v1/decisions/${b}?wait=30`);
    expect(final.body).toMatchObject({ status: 'final', decision: 'DENY' });
    const closedB = await eventually(async () => {
      const u = updatesOf(b);
      // Sam's request, Sue's request and Sue's reminder.
      return u.length >= 3 ? u : undefined;
    }, 30_000, 'closing notices for an expired round');
    for (const u of closedB) {
      expect(String(u.body['text'])).toMatch(/Round 1 expired/);
      expect(JSON.stringify(u.body['blocks'])).not.toContain('countersign_approve');
    }
    // A click on the expired round's reminder does not count.
    const late = payload({ user: 'U0SUE', verdict: 'approve', ref: refOf(reminder) });
    expect((await post(late, signed(late))).status).toBe(200);
    await eventually(async () => ((await stack.db.query(`SELECT 1 FROM channel_answer_log WHERE decision_id = $1 AND actor LIKE '%U0SUE' AND NOT counted`, [b])).rowCount ? true : undefined), 20_000, 'late click refused');
    expect((await events(b, 'ApprovalGranted')).map((d) => d.approver_id)).toEqual([sam.id]);
    console.log('slack expired-round cases: 1 (a click on the reminder after expiry), counted: 0');
  }, 120_000);

  it('a click acknowledged just before the API dies is counted once after it restarts (the inbox)', async () => {
    const c = await ask('deploy_tool');
    const ref = refOf(await messageTo('U0SAM', c));
    await stack.api.stop();
    const crashing = await startProcess('api', 'services/api/main.ts', { ...stack.env, COUNTERSIGN_LOG_LEVEL: 'info', COUNTERSIGN_CRASH_AT: 'after-slack-ack' }, /api listening/);
    const exited = new Promise<void>((r) => crashing.child.once('exit', () => r()));
    const click = payload({ user: 'U0SAM', verdict: 'approve', ref });
    const headers = signed(click);
    const ack = await post(click, headers);
    expect(ack.status).toBe(200);
    await exited;
    expect(crashing.child.signalCode).toBe('SIGKILL');
    // Acknowledged, stored, not yet worked on.
    expect(await answers(c)).toEqual([]);
    const stored = await stack.db.query<{ processed_at: Date | null }>(`SELECT processed_at FROM channel_slack_interactions WHERE ref = $1`, [ref]);
    expect(stored.rows).toEqual([{ processed_at: null }]);

    stack.api = await startProcess('api', 'services/api/main.ts', { ...stack.env, COUNTERSIGN_LOG_LEVEL: 'info' }, /api listening/);
    await eventually(async () => ((await answers(c)).length ? true : undefined), 60_000, 'the stored click counted after the restart');
    // Replays after the restart change nothing.
    for (let i = 0; i < 5; i++) expect((await post(click, headers)).status).toBe(200);
    const processed = await eventually(async () => (await stack.db.query<{ outcome: string }>(`SELECT outcome FROM channel_slack_interactions WHERE ref = $1 AND processed_at IS NOT NULL`, [ref])).rows[0], 20_000, 'inbox row processed');
    expect(processed.outcome).toMatch(/^counted/);
    expect(await answers(c)).toEqual([expect.objectContaining({ type: 'ApprovalGranted', data: expect.objectContaining({ approver_id: sam.id, channel: 'slack' }) })]);
    await eventually(async () => updatesOf(c).find((u) => u.body['channel'] === 'DU0SAM' && /Approved by Sam/.test(String(u.body['text']))), 20_000, 'message updated after the restart');
    console.log(`slack inbox cases: 5 replays after the restart, counted beyond the one rightful click: ${(await answers(c)).length - 1}`);
  }, 120_000);

  it('a tenant bound to a Slack workspace refuses clicks from any other, and a workspace belongs to one tenant', async () => {
    const d = await ask('deploy_tool');
    const ref = refOf(await messageTo('U0SAM', d));
    expect((await api(stack, 'GET', '/v1/slack/workspace')).body).toEqual({ team_id: null });
    expect((await api({ url: stack.url, key: sam.key }, 'PUT', '/v1/slack/workspace', { team_id: TEAM })).status).toBe(403);
    expect((await api(stack, 'PUT', '/v1/slack/workspace', { team_id: 'bad id' })).status).toBe(400);
    const bound = await api(stack, 'PUT', '/v1/slack/workspace', { team_id: 'T0ELSEWHERE' });
    expect(bound.status).toBe(200);
    expect(Object.keys(bound.body).sort()).toEqual(['bound_at', 'team_id']);

    // The message was posted from T0COUNTER; the tenant is now bound to T0ELSEWHERE: neither team may answer.
    const fromBot = payload({ user: 'U0SAM', verdict: 'approve', ref });
    const fromBound = payload({ team: 'T0ELSEWHERE', user: 'U0SAM', verdict: 'approve', ref });
    expect((await post(fromBot, signed(fromBot))).status).toBe(200);
    expect((await post(fromBound, signed(fromBound))).status).toBe(200);
    const refused = await eventually(async () => {
      const rows = (await stack.db.query<{ reason: string }>(`SELECT reason FROM channel_answer_log WHERE decision_id = $1 AND NOT counted`, [d])).rows;
      return rows.length >= 2 ? rows.map((r) => r.reason).sort() : undefined;
    }, 20_000, 'workspace refusals');
    expect(refused).toEqual(["the click came from a Slack workspace other than the tenant's", 'the click came from another Slack workspace']);
    // Nothing is posted for this tenant from the bot's other workspace: a recorded failure.
    const e = await ask('deploy_tool');
    const failed = await eventually(async () => (await events(e, 'NotificationFailed')).find((x) => x.channel === 'slack' && x.recipient === sam.id), 30_000, 'failed delivery');
    expect(failed.error).toMatch(/bound to T0ELSEWHERE/);

    // Another tenant cannot take a bound workspace, and sees none of ours.
    const other = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id: `slack-other-${randomUUID().slice(0, 8)}`, name: 'Other' });
    expect(other.status).toBe(201);
    const otherAdmin = { url: stack.url, key: other.body.admin_api_key as string };
    expect((await api(otherAdmin, 'GET', '/v1/slack/workspace')).body).toEqual({ team_id: null });
    expect((await api(otherAdmin, 'PUT', '/v1/slack/workspace', { team_id: 'T0ELSEWHERE' })).status).toBe(409);

    // Bound back to the bot's workspace, the rightful click counts.
    expect((await api(stack, 'PUT', '/v1/slack/workspace', { team_id: TEAM })).status).toBe(200);
    const again = payload({ user: 'U0SAM', verdict: 'approve', ref });
    expect((await post(again, signed(again))).status).toBe(200);
    await eventually(async () => ((await answers(d)).length ? true : undefined), 30_000, 'approval after rebinding');
    expect(await answers(d)).toHaveLength(1);
    console.log('slack workspace cases: 2 refused clicks (bot workspace while bound elsewhere, the bound workspace on a message from another), counted: 0');
  }, 120_000);
  it('Reject asks for a reason in a modal; the submitted reason is the answer, counted once, and only from the addressee', async () => {
    const f = await ask('deploy_tool');
    const ref = refOf(await messageTo('U0SUE', f));
    const samRef = refOf(await messageTo('U0SAM', f));
    const click = payload({ user: 'U0SUE', verdict: 'reject', ref });
    expect((await post(click, signed(click))).status).toBe(200);
    const opened = await eventually(async () => calls.find((c) => c.method === 'views.open' && JSON.stringify(c.body).includes(ref)), 20_000, 'reason modal');
    const view = typeof opened.body['view'] === 'string' ? JSON.parse(opened.body['view']) : opened.body['view'];
    expect(view).toMatchObject({ type: 'modal', callback_id: 'countersign_reject_reason', private_metadata: ref });
    expect(opened.body['trigger_id']).toBe(JSON.parse(new URLSearchParams(click).get('payload')!).trigger_id);
    // The click alone answered nothing.
    expect(await answers(f)).toEqual([]);

    // Sue's reason submitted on Sam's message (a forged private_metadata), and from another workspace: refused.
    const forged = reasonPayload({ user: 'U0SUE', ref: samRef, reason: 'not mine to answer' });
    const elsewhere = reasonPayload({ team: 'T0EVIL', user: 'U0SUE', ref, reason: 'from elsewhere' });
    for (const b of [forged, elsewhere]) {
      const res = await post(b, signed(b));
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(''); // an empty 200 closes the modal
    }
    const submit = reasonPayload({ user: 'U0SUE', ref, reason: 'not during the <!channel> freeze' });
    const headers = signed(submit);
    expect((await post(submit, headers)).status).toBe(200);
    await eventually(async () => ((await answers(f)).length ? true : undefined), 30_000, 'rejection');
    for (let i = 0; i < 10; i++) await post(submit, headers);
    expect((await api(stack, 'GET', `/v1/decisions/${f}?wait=20`)).body).toMatchObject({ status: 'final', decision: 'DENY' });
    const counted = await answers(f);
    expect(counted).toEqual([expect.objectContaining({ type: 'ApprovalRejected', data: expect.objectContaining({ approver_id: sue.id, channel: 'slack', comment: 'not during the <!channel> freeze' }) })]);
    const refusedHere = (await stack.db.query(`SELECT reason FROM channel_answer_log WHERE decision_id = $1 AND NOT counted`, [f])).rows.map((r: any) => r.reason as string);
    expect(refusedHere.sort()).toEqual(['replayed payload', 'replayed payload', 'replayed payload', 'replayed payload', 'replayed payload', 'replayed payload', 'replayed payload', 'replayed payload', 'replayed payload', 'replayed payload', 'the click came from another Slack workspace', 'this message was sent to another approver']);
    // Sam's message first said why the forged submission on it did not count (buttons kept), then closed.
    const onSam = () => updatesOf(f).filter((u) => u.body['channel'] === 'DU0SAM');
    const shown = await eventually(async () => onSam().find((u) => /rejected by Sue \(slack\)/.test(String(u.body['text']))), 20_000, "Sam's message closed");
    expect(JSON.stringify(shown.body['blocks'])).not.toContain('countersign_approve');
    expect(String(onSam()[0]!.body['text'])).toMatch(/not counted: this message was sent to another approver/);
    expect(JSON.stringify(onSam()[0]!.body['blocks'])).toContain('countersign_approve');
    console.log('slack reject-reason cases: 12 (forged modal ref, other workspace, 10 replays), counted: 0');
  }, 120_000);
  it('never writes the bot token or the signing secret to a log, an event or an answer', async () => {
    const outputs = [stack.api.output(), stack.worker.output()].join('\n');
    expect(outputs.length).toBeGreaterThan(0);
    for (const secret of ['xoxb-test-token', SECRET]) {
      expect(outputs).not.toContain(secret);
      expect((await stack.db.query(`SELECT 1 FROM events WHERE data::text LIKE '%' || $1 || '%'`, [secret])).rowCount).toBe(0);
      expect((await stack.db.query(`SELECT 1 FROM channel_answer_log WHERE reason LIKE '%' || $1 || '%' OR actor LIKE '%' || $1 || '%'`, [secret])).rowCount).toBe(0);
      expect(JSON.stringify((await api(stack, 'GET', '/v1/slack/workspace')).body)).not.toContain(secret);
    }
  });
});
