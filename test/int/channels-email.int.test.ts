import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { SMTPServer } from 'smtp-server';
import { smtpCapture, unqp } from './smtp-capture.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activateYaml, addPrincipal, api, eventually, startTestStack, type TestStack } from './harness.ts';

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: email-channel-test, name: Email approvals under test }
scope: { level: tenant }
rules:
  - name: drop-needs-two
    match: { tool: db_tool, operation: Drop }
    decision: REQUIRE_APPROVAL
    reason: dropping a table needs two DBAs
    approval: { approvers: [dba], quorum: 2, timeout: 1h }
  - name: truncate-escalates
    match: { tool: db_tool, operation: Truncate }
    decision: REQUIRE_APPROVAL
    reason: truncating escalates to the leads fast
    approval: { approvers: [dba], quorum: 1, escalate_after: 4s, timeout: 8s, escalate_to: [leads] }
`;

const HOSTILE = '<script>alert(1)</script><a href="http://evil.example">click</a> \u200bzw\u202eRTL\u202c "quoted" & <!channel>';

type Mail = { to: string[]; raw: string };

/** A headless browser, when the machine has one (Debian: apt-get install chromium). */
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
/** Loads a page the way a link preview or a security scanner with a real browser does: renders it, runs it, clicks nothing. */
const browserLoad = (url: string) => new Promise<string>((resolve, reject) => {
  execFile(CHROMIUM!, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', `--user-data-dir=/tmp/cs-chromium-${randomUUID()}`, '--virtual-time-budget=3000', '--dump-dom', url],
    { timeout: 60_000 }, (err, stdout) => (err ? reject(new Error(`chromium failed: ${err.message}`)) : resolve(stdout)));
});

/** Decodes quoted-printable enough to read links and text back out of a message. */

describe('email approvals: single-use links, a confirmation page, CSRF; GET never answers', () => {
  let stack: TestStack;
  let smtp: SMTPServer;
  const mails: Mail[] = [];
  let agent: { id: string; key: string };
  let dee: { id: string; key: string };
  let dag: { id: string; key: string };

  const linkFor = async (to: string, decisionId: string) => eventually(async () => {
    const m = mails.find((x) => x.to.includes(to) && unqp(x.raw).includes(decisionId));
    const link = m && /https?:\/\/[^\s"<>]+\/v1\/email-approvals\/[A-Za-z0-9_-]{43}/.exec(unqp(m.raw))?.[0];
    return link ? { link, mail: unqp(m.raw) } : undefined;
  }, 30_000, `mail to ${to}`);
  const pageOf = async (link: string) => {
    const res = await fetch(link);
    const body = await res.text();
    return { status: res.status, body, csrf: /name="csrf" value="([^"]+)"/.exec(body)?.[1] ?? '' };
  };
  const postForm = (link: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form).toString() });
  const answers = async (id: string) =>
    (await stack.db.query<{ type: string; data: any }>(`SELECT type, data FROM events WHERE stream_id = $1 AND type IN ('ApprovalGranted', 'ApprovalRejected') ORDER BY stream_version`, [`run/${id}`])).rows;
  const ask = async () => {
    const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', {
      agent: { id: 'db-bot' }, action: { tool: 'db_tool', operation: 'Drop', args: { table: 'users', note: HOSTILE } }, idempotency_key: randomUUID(),
    });
    expect(res.body).toMatchObject({ decision: 'REQUIRE_APPROVAL' });
    return res.body.decision_id as string;
  };

  beforeAll(async () => {
    smtp = await smtpCapture(mails, { refuse: (address) => address === 'bounce@example.test' });
    const port = (smtp.server.address() as { port: number }).port;
    stack = await startTestStack({ COUNTERSIGN_SMTP_URL: `smtp://127.0.0.1:${port}`, COUNTERSIGN_MAIL_FROM: 'Countersign <noreply@countersign.test>' });
    await activateYaml(stack, POLICY);
    agent = await addPrincipal(stack, { name: 'db bot', kind: 'agent', roles: ['agent'] });
    dee = await addPrincipal(stack, { name: 'Dee', roles: ['approver'], groups: ['dba'], email: 'dee@example.test' });
    await addPrincipal(stack, { name: 'Dan', roles: ['approver'], groups: ['dba'], email: 'dan@example.test' });
    await addPrincipal(stack, { name: 'Bo', roles: ['approver'], groups: ['dba'], email: 'bounce@example.test' });
    await addPrincipal(stack, { name: 'Dora', roles: ['approver'], groups: ['dba'], email: 'dora@example.test' });
    // One link each for the answers that spend their link without counting.
    for (const n of ['del', 'dot', 'dax', 'dov']) await addPrincipal(stack, { name: n, roles: ['approver'], groups: ['dba'], email: `${n}@example.test` });
    await addPrincipal(stack, { name: 'Lou', roles: ['approver'], groups: ['leads'], email: 'lou@example.test' });
    dag = await addPrincipal(stack, { name: 'Dag', roles: ['approver'], groups: ['dba'], email: 'dag@example.test' });
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
    await new Promise<void>((r) => smtp?.close(() => r()));
  });

  it('counts only a POST from the confirmation page, once, before expiry, for its own decision', async () => {
    const id = await ask();
    const other = await ask();
    const { link: deeLink, mail } = await linkFor('dee@example.test', id);
    const { link: danLink } = await linkFor('dan@example.test', id);
    const { link: doraLink } = await linkFor('dora@example.test', id);
    const { link: deeOtherLink } = await linkFor('dee@example.test', other);

    const failed = await eventually(async () => (await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE stream_id = $1 AND type = 'NotificationFailed' AND data->>'channel' = 'email'`, [`run/${id}`])).rows[0], 30_000, 'failed email delivery');
    expect(failed.data.error).toMatch(/550|mailbox/);

    // The mail: plain text and HTML, facts, the agent's text escaped and without invisible characters.
    expect(mail).toMatch(/Content-Type: text\/plain/i);
    expect(mail).toMatch(/Content-Type: text\/html/i);
    expect(mail).toContain('drop-needs-two');
    // The HTML part shows the agent's markup as text; the plain-text part is not HTML (and its URLs are defanged).
    const htmlPart = mail.split(/Content-Type: text\/html/i)[1]!;
    const textPart = mail.split(/Content-Type: text\/html/i)[0]!;
    expect(htmlPart).toContain('&lt;script&gt;');
    expect(htmlPart).not.toContain('<script>');
    expect(htmlPart).not.toContain('<a href="http://evil');
    expect(textPart).not.toContain('http://evil');
    expect(mail).not.toMatch(/\u200b|\u202e/);
    // Only the hash is stored.
    const token = deeLink.split('/').pop()!;
    expect((await stack.db.query(`SELECT 1 FROM channel_email_tokens WHERE token_hash = $1 OR token_hash = $2`, [token, token.toLowerCase()])).rowCount).toBe(0);

    const adversarial: Array<[string, () => Promise<Response>, number]> = [];
    // GET and HEAD (link scanners, previews) only show the page, any number of times.
    for (let i = 0; i < 5; i++) {
      adversarial.push([`GET #${i}`, () => fetch(deeLink), 200]);
      adversarial.push([`HEAD #${i}`, () => fetch(deeLink, { method: 'HEAD' }), 200]);
    }
    const page = await pageOf(deeLink);
    expect(page.status).toBe(200);
    expect(page.body).toContain('&lt;script&gt;');
    expect(page.body).not.toContain('<script>');
    expect(page.body).not.toMatch(/\u200b|\u202e/);
    expect(page.csrf).not.toBe('');
    const form = { csrf: page.csrf, decision_id: id, round: '1', verdict: 'approve' };
    const otherPage = await pageOf(deeOtherLink);
    adversarial.push(
      ['POST without CSRF', () => postForm(deeLink, { ...form, csrf: '' }), 403],
      ['POST with a forged CSRF', () => postForm(deeLink, { ...form, csrf: 'A'.repeat(43) }), 403],
      ['POST with another link’s CSRF', () => postForm(deeLink, { ...form, csrf: otherPage.csrf }), 403],
      ['POST as JSON', () => fetch(deeLink, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(form) }), 415],
      ['POST from another site', () => postForm(deeLink, form, { origin: 'https://evil.example' }), 403],
      ['unknown token', () => postForm(deeLink.replace(/[A-Za-z0-9_-]{43}$/, 'B'.repeat(43)), form), 404],
      ['malformed token', () => postForm(deeLink.replace(/[A-Za-z0-9_-]{43}$/, 'short'), form), 404],
      ['another decision’s link with this page', () => postForm(deeOtherLink, form), 403],
    );
    // A headless browser that loads (renders, runs) the page and clicks nothing: a scanner or preview.
    if (CHROMIUM) {
      for (let i = 0; i < 2; i++) {
        adversarial.push([`headless Chromium load #${i}`, async () => {
          const dom = await browserLoad(deeLink);
          expect(dom).toContain('Approve');
          return new Response(null, { status: 200, headers: { 'content-type': 'text/html' } });
        }, 200]);
      }
    } else if (process.env['CI']) {
      throw new Error('no Chromium on this machine (apt-get install chromium): under CI the headless-browser cases must run');
    } else {
      console.warn('no Chromium on this machine: the headless-browser cases are not run');
    }
    for (const [name, send, status] of adversarial) {
      const res = await send();
      expect({ name, status: res.status }).toEqual({ name, status });
      expect(res.headers.get('content-type') ?? '').toMatch(/text\/html/);
    }
    expect(await answers(id)).toEqual([]);
    expect(await answers(other)).toEqual([]);

    // An answer from the page spends the link even when it is refused (single-use means single-use): another
    // decision or round named in the form, no verdict, an approver whose address changed (another person now).
    const spent: Array<[string, string, Record<string, string>, number]> = [];
    const changes: Array<[string, Record<string, string>, number]> = [['del', { decision_id: other }, 409], ['dot', { round: '2' }, 409], ['dax', { verdict: 'maybe' }, 400]];
    for (const [who, change, status] of changes) {
      const { link } = await linkFor(`${who}@example.test`, id);
      const p = await pageOf(link);
      spent.push([`${who}: ${JSON.stringify(change)}`, link, { csrf: p.csrf, decision_id: id, round: '1', verdict: 'approve', ...change }, status]);
    }
    const { link: dagLink } = await linkFor('dag@example.test', id);
    const dagPage = await pageOf(dagLink);
    expect((await api(stack, 'PATCH', `/v1/principals/${dag.id}`, { email: 'someone-else@example.test' })).status).toBe(200);
    spent.push(['dag: the address now belongs to no approver', dagLink, { csrf: dagPage.csrf, decision_id: id, round: '1', verdict: 'approve' }, 409]);
    for (const [name, link, f, status] of spent) {
      const res = await postForm(link, f);
      expect({ name, status: res.status }).toEqual({ name, status });
      const again = await postForm(link, { ...f, decision_id: id, round: '1', verdict: 'approve' });
      expect({ name, again: again.status, page: (await fetch(link)).status }).toEqual({ name, again: 404, page: 404 });
    }
    expect(await answers(id)).toEqual([]);

    // Expired: the link stops working at its expiry (never later than the round's deadline).
    const expiry = await stack.db.query<{ ok: boolean }>(`SELECT bool_and(t.expires_at <= (SELECT (data->>'deadline')::timestamptz FROM events e WHERE e.stream_id = 'run/' || t.decision_id AND e.type = 'ApprovalRequested' LIMIT 1)) AS ok FROM channel_email_tokens t`);
    expect(expiry.rows[0]!.ok).toBe(true);
    const danPage = await pageOf(danLink);
    await stack.db.query(`UPDATE channel_email_tokens SET expires_at = now() - interval '1 second' WHERE email = 'dan@example.test'`);
    const expired = await postForm(danLink, { csrf: danPage.csrf, decision_id: id, round: '1', verdict: 'approve' });
    expect(expired.status).toBe(404);
    expect(await expired.text()).toMatch(/expired/);

    // The rightful answer counts once; the same link again does not.
    const ok = await postForm(deeLink, form);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/Approved by Dee/);
    const again = await Promise.all([postForm(deeLink, form), postForm(deeLink, { ...form, verdict: 'reject' }), fetch(deeLink)]);
    expect(again.map((r) => r.status)).toEqual([404, 404, 404]);
    const counted = await answers(id);
    expect(counted).toHaveLength(1);
    expect(counted[0]).toMatchObject({ type: 'ApprovalGranted', data: { approver_id: dee.id, channel: 'email' } });

    // Dora rejects: the round closes; Dan's (expired) link never counted.
    const { link: dovLink } = await linkFor('dov@example.test', id);
    const dovPage = await pageOf(dovLink);
    const doraPage = await pageOf(doraLink);
    expect((await postForm(doraLink, { csrf: doraPage.csrf, decision_id: id, round: '1', verdict: 'reject' })).status).toBe(200);
    const final = await api(stack, 'GET', `/v1/decisions/${id}?wait=20`);
    expect(final.body).toMatchObject({ status: 'final', decision: 'DENY' });
    // A page opened while the round was open, answered after it closed: refused by the workflow, link spent.
    const late = await postForm(dovLink, { csrf: dovPage.csrf, decision_id: id, round: '1', verdict: 'approve' });
    expect(late.status).toBe(409);
    expect(await late.text()).toMatch(/already rejected/);
    expect((await postForm(dovLink, { csrf: dovPage.csrf, decision_id: id, round: '1', verdict: 'approve' })).status).toBe(404);

    // Every answer on a real link that did not count is recorded as refused, with its reason; the two on links
    // that do not exist (which anyone can send) write nothing and are counted by a metric.
    const log = (await stack.db.query<{ counted: boolean; reason: string; decision_id: string | null }>(`SELECT counted, reason, decision_id FROM channel_answer_log WHERE channel = 'email'`)).rows;
    expect(log.filter((r) => r.counted)).toHaveLength(2);
    // the POSTs: the adversarial ones, the expired link, Dee's link twice more, each spent link twice, Dov's twice.
    const postCases = adversarial.filter(([n]) => !/^(GET|HEAD|headless)/.test(n)).length + 1 + 2 + spent.length * 2 + 2;
    expect(log.filter((r) => !r.counted)).toHaveLength(postCases - 2);
    expect(log.filter((r) => r.decision_id === null)).toEqual([]);
    expect(await (await fetch(`${stack.url}/metrics`)).text()).toMatch(/countersign_channel_refusals_total\{channel="email",reason="unknown_link"\} 2\b/);

    const adversarialCount = adversarial.length + 1 + 3 + spent.length * 2 + 2;
    const countedAdversarial = (await answers(id)).filter((a) => a.data.approver_id !== dee.id && a.type !== 'ApprovalRejected').length
      + (await answers(id)).filter((a) => a.data.approver_id === dee.id).length - 1
      + (await answers(other)).length;
    console.log(`email adversarial cases: ${adversarialCount}, counted: ${countedAdversarial}`);
    expect(countedAdversarial).toBe(0);
  }, 120_000);
  it('reminds those who have not answered before each deadline and announces the escalation, by email, each with its own link', async () => {
    const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'db-bot' }, action: { tool: 'db_tool', operation: 'Truncate', args: { table: 'logs' } }, idempotency_key: randomUUID() });
    expect(res.body).toMatchObject({ decision: 'REQUIRE_APPROVAL' });
    const id = res.body.decision_id as string;
    const subject = (m: Mail) => /^Subject: (.*(?:\r?\n[ \t].*)*)/m.exec(unqp(m.raw))?.[1]?.replace(/\r?\n[ \t]+/g, ' ') ?? '';
    const mailsTo = (to: string) => mails.filter((m) => m.to.includes(to) && unqp(m.raw).includes(id));
    // Dee: the request, a reminder before the first deadline, another before the escalated one. Lou: the escalation, then its reminder.
    const deeMails = await eventually(async () => (mailsTo('dee@example.test').length >= 3 ? mailsTo('dee@example.test') : undefined), 60_000, "Dee's reminders");
    const louMails = await eventually(async () => (mailsTo('lou@example.test').length >= 2 ? mailsTo('lou@example.test') : undefined), 60_000, "Lou's escalation and reminder");
    expect(deeMails.map(subject)).toEqual([expect.stringMatching(/^Approval needed/), expect.stringMatching(/^Reminder/), expect.stringMatching(/^Reminder/)]);
    expect(louMails.map(subject)).toEqual([expect.stringMatching(/^Escalated to you/), expect.stringMatching(/^Reminder/)]);
    const links = deeMails.map((m) => /https?:\/\/[^\s"<>]+\/v1\/email-approvals\/[A-Za-z0-9_-]{43}/.exec(unqp(m.raw))![0]);
    expect(new Set(links).size).toBe(3);
    const final = await api(stack, 'GET', `/v1/decisions/${id}?wait=30`);
    expect(final.body).toMatchObject({ status: 'final', decision: 'DENY' });
    // Every link of the round (request and reminders) lived until the round's final deadline, and no longer.
    const expiries = await stack.db.query<{ expires_at: Date }>(`SELECT DISTINCT expires_at FROM channel_email_tokens WHERE decision_id = $1`, [id]);
    const escalated = await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE stream_id = $1 AND type = 'ApprovalEscalated'`, [`run/${id}`]);
    expect(expiries.rows.map((r) => r.expires_at.toISOString())).toEqual([new Date(escalated.rows[0]!.data.deadline).toISOString()]);
    for (const link of links) {
      const page = await fetch(link);
      expect({ status: page.status, text: /expired/.test(await page.text()) }).toEqual({ status: 404, text: true });
    }
    // The second reminder runs beside the deadline's timer: its events may follow the final decision.
    const notes = await eventually(async () => {
      const rows = (await stack.db.query<{ data: any }>(`SELECT data FROM events WHERE stream_id = $1 AND type = 'NotificationSent' AND data->>'channel' = 'email'`, [`run/${id}`])).rows.map((r) => r.data);
      return rows.filter((n) => n.recipient === dee.id && n.purpose === 'reminder').length >= 2 ? rows : undefined;
    }, 30_000, "Dee's two reminders recorded");
    expect(notes.filter((n) => n.recipient === dee.id && n.purpose === 'reminder')).toHaveLength(2);
    expect(notes.filter((n) => n.purpose === 'escalation').map((n) => n.recipient)).toHaveLength(1);
  }, 120_000);
});
