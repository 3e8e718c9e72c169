import type { Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { SMTPServer } from 'smtp-server';
import { smtpCapture, unqp } from './smtp-capture.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slackSignature } from '../../services/channels/slack-signature.ts';
import { activateYaml, addPrincipal, api, eventually, startTestStack, type TestStack } from './harness.ts';
import { slackStandIn, type SlackCall } from './slack-stand-in.ts';

const SECRET = 'slack-signing-secret-for-the-digest-test';
const TEAM = 'T0DIGEST';
const CAP = 2;
const WINDOW_SEC = 12;

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: digest-test, name: Notification cap under test }
scope: { level: tenant }
rules:
  - name: ops-approve
    match: { tool: ops_tool }
    decision: REQUIRE_APPROVAL
    reason: ops changes need an operator
    approval: { approvers: [ops], quorum: 1, timeout: 1h }
`;

type Call = SlackCall;



describe('per-approver notification cap: the overflow goes out once, as one digest per channel, when the window allows', () => {
  let stack: TestStack;
  let slack: Server;
  let smtp: SMTPServer;
  const calls: Call[] = [];
  const mails: Array<{ to: string[]; raw: string }> = [];
  let agent: { id: string; key: string };
  let cam: { id: string; key: string };

  beforeAll(async () => {
    slack = slackStandIn(calls, TEAM);
    await new Promise<void>((r) => slack.listen(0, '127.0.0.1', () => r()));
    smtp = await smtpCapture(mails);
    stack = await startTestStack({
      COUNTERSIGN_SLACK_SIGNING_SECRET: SECRET,
      COUNTERSIGN_SLACK_BOT_TOKEN: 'xoxb-digest-test',
      COUNTERSIGN_SLACK_API_URL: `http://127.0.0.1:${(slack.address() as { port: number }).port}/api/`,
      COUNTERSIGN_SMTP_URL: `smtp://127.0.0.1:${(smtp.server.address() as { port: number }).port}`,
      COUNTERSIGN_NOTIFY_CAP: String(CAP),
      COUNTERSIGN_NOTIFY_CAP_WINDOW: `${WINDOW_SEC}s`,
      COUNTERSIGN_REMIND_BEFORE: 'off',
    });
    await activateYaml(stack, POLICY);
    agent = await addPrincipal(stack, { name: 'ops bot', kind: 'agent', roles: ['agent'] });
    cam = await addPrincipal(stack, { name: 'Cam', roles: ['approver'], groups: ['ops'], slack_user_id: 'U0CAM', email: 'cam@example.test' });
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
    slack?.close();
    await new Promise<void>((r) => smtp?.close(() => r()));
  });

  const ask = async () => {
    const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'ops-bot' }, action: { tool: 'ops_tool', args: { n: randomUUID() } }, idempotency_key: randomUUID() });
    expect(res.body).toMatchObject({ decision: 'REQUIRE_APPROVAL' });
    return res.body.decision_id as string;
  };
  const notes = async (id: string) => (await stack.db.query<{ type: string; data: any }>(
    `SELECT type, data FROM events WHERE stream_id = $1 AND type IN ('NotificationSent', 'NotificationFailed') AND data->>'channel' IN ('slack', 'email') ORDER BY stream_version`, [`run/${id}`],
  )).rows;
  const answers = async (id: string) => (await stack.db.query<{ type: string; data: any }>(`SELECT type, data FROM events WHERE stream_id = $1 AND type IN ('ApprovalGranted', 'ApprovalRejected')`, [`run/${id}`])).rows;
  const slackDigests = () => calls.filter((c) => c.method === 'chat.postMessage' && /\(digest\)/.test(String(c.body['text'])));
  // Read decoded (quoted-printable joined), as the digest's links and decisions are looked for in its text.
  const mailDigests = () => mails.map((m) => ({ ...m, raw: unqp(m.raw) })).filter((m) => /Subject: .*\(digest\)/.test(m.raw.replace(/\r?\n\s+/g, ' ')));

  it(`sends ${CAP} per window on each channel, records the rest for the digest, and sends one digest per channel with only the rounds still open`, async () => {
    // One at a time, so the order of the runs is the order of their notifications.
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = await ask();
      ids.push(id);
      await eventually(async () => ((await notes(id)).length >= 2 ? true : undefined), 30_000, `notifications of run ${i}`);
    }
    for (const [i, id] of ids.entries()) {
      const purposes = (await notes(id)).map((n) => `${n.type}:${n.data.channel}:${n.data.purpose}`).sort();
      const expected = i < CAP ? ['NotificationSent:email:request', 'NotificationSent:slack:request'] : ['NotificationSent:email:digest', 'NotificationSent:slack:digest'];
      expect({ i, purposes }).toEqual({ i, purposes: expected });
    }
    expect(calls.filter((c) => c.method === 'chat.postMessage' && c.body['channel'] === 'U0CAM')).toHaveLength(CAP);
    expect(mails.filter((m) => m.to.includes('cam@example.test'))).toHaveLength(CAP);

    // One of the held-back rounds is answered meanwhile (from the API): the digests leave it out.
    const [, , third, fourth, fifth] = ids as [string, string, string, string, string];
    expect((await api({ url: stack.url, key: cam.key }, 'POST', `/v1/decisions/${fourth}/approvals`, { verdict: 'approve' })).status).toBe(200);

    const slackDigest = await eventually(async () => slackDigests()[0], (WINDOW_SEC + 30) * 1000, 'the Slack digest');
    const mailDigest = await eventually(async () => mailDigests()[0], (WINDOW_SEC + 30) * 1000, 'the email digest');
    const shown = JSON.stringify(slackDigest.body['blocks']);
    expect(shown).toContain(third);
    expect(shown).toContain(fifth);
    expect(shown).not.toContain(fourth);
    expect(mailDigest.raw).toContain(third);
    expect(mailDigest.raw).toContain(fifth);
    expect(mailDigest.raw).not.toContain(fourth);
    expect(mailDigest.raw).toMatch(/Content-Type: text\/plain/i);
    expect(mailDigest.raw).toMatch(/Content-Type: text\/html/i);

    // Each round in the digest is answerable: a Slack button for one, an email link for the other.
    const blocks = slackDigest.body['blocks'] as any[];
    const section = blocks.findIndex((b) => b.type === 'section' && JSON.stringify(b).includes(third));
    const ref = blocks[section + 1].elements[0].value as string;
    const click = new URLSearchParams({ payload: JSON.stringify({ type: 'block_actions', team: { id: TEAM }, user: { id: 'U0CAM', team_id: TEAM }, trigger_id: randomUUID(), actions: [{ action_id: 'countersign_approve', value: ref }] }) }).toString();
    const ts = String(Math.floor(Date.now() / 1000));
    const res = await fetch(`${stack.url}/v1/slack/interactions`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': ts, 'x-slack-signature': slackSignature(SECRET, ts, click) }, body: click });
    expect(res.status).toBe(200);
    await eventually(async () => ((await answers(third)).length ? true : undefined), 30_000, 'digest click counted');
    // The digest message is re-rendered: the answered round shows its state, the other keeps its buttons.
    const rerendered = await eventually(async () => calls.find((c) => c.method === 'chat.update' && /still open/.test(String(c.body['text'])) && JSON.stringify(c.body['blocks']).includes('is approved')), 30_000, 'digest re-rendered');
    const after = rerendered.body['blocks'] as any[];
    expect(after[after.findIndex((b) => b.type === 'section' && JSON.stringify(b).includes(fifth)) + 1].type).toBe('actions');
    expect(after[after.findIndex((b) => b.type === 'section' && JSON.stringify(b).includes(third)) + 1].type).toBe('context');

    const links = [...mailDigest.raw.matchAll(/https?:\/\/[^\s"<>]+\/v1\/email-approvals\/[A-Za-z0-9_-]{43}/g)].map((m) => m[0]);
    const fifthLink = [...new Set(links)].find((l) => mailDigest.raw.indexOf(l) > mailDigest.raw.indexOf(fifth));
    expect(fifthLink).toBeDefined();
    const page = await fetch(fifthLink!);
    const html = await page.text();
    expect(html).toContain(fifth);
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)![1]!;
    const answered = await fetch(fifthLink!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf, decision_id: fifth, round: '1', verdict: 'approve' }).toString() });
    expect(answered.status).toBe(200);
    expect((await answers(fifth))).toEqual([expect.objectContaining({ data: expect.objectContaining({ approver_id: cam.id, channel: 'email' }) })]);

    // Once: however many sweeps pass, there is one digest per channel; and never more than CAP sends in a window.
    const swept = await stack.db.query<{ n: string }>(`SELECT count(*) AS n FROM channel_digest_items WHERE digested_at IS NULL`);
    expect(Number(swept.rows[0]!.n)).toBe(0);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(slackDigests()).toHaveLength(1);
    expect(mailDigests()).toHaveLength(1);
    const worst = await stack.db.query<{ channel: string; n: string }>(
      `SELECT a.channel, max((SELECT count(*) FROM channel_notification_sends b WHERE b.approver_id = a.approver_id AND b.channel = a.channel AND b.failed_at IS NULL
                                AND b.at > a.at - make_interval(secs => $1) AND b.at <= a.at)) AS n
         FROM channel_notification_sends a WHERE a.failed_at IS NULL GROUP BY a.channel ORDER BY a.channel`, [WINDOW_SEC],
    );
    expect(worst.rows.map((r) => [r.channel, Number(r.n)])).toEqual([['email', CAP], ['slack', CAP]]);
  }, 180_000);
});
