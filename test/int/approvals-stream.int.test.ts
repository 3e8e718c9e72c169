import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApprovalStreamEvent } from '../../schemas/approval-stream.ts';
import { STREAMS_PER_PRINCIPAL } from '../../services/api/routes/approval-stream.ts';
import { activateYaml, addPrincipal, api, eventually, ROOT, startTestStack, type TestStack } from './harness.ts';

// GET /v1/approvals/stream: the caller's inbox as server-sent events, on the real stack (the decision workflow
// writes the rounds; the append's trigger notifies; the API's one LISTEN connection fans out). An approval by
// another approver closes the round on the stream; another tenant's approver of a group of the same name hears
// nothing; no key, a wrong role, a forged session cookie and one stream too many are refused; shutdown ends the
// streams cleanly.

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: stream-rounds, name: Finance approves refunds }
scope: { level: tenant }
rules:
  - name: refunds
    match: { tool: refund_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [finance], quorum: 1, timeout: 1h }
  - name: wires
    match: { tool: wire_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [finance], quorum: 2, timeout: 1h }
`;

type Stream = { status: number; contentType: string | null; events: ApprovalStreamEvent[]; comments: string[]; ended: Promise<void>; close: () => void; body: unknown };

/** Opens the stream and parses its frames as they come (a `round` event's data is checked against its schema). */
async function openStream(url: string, headers: Record<string, string>): Promise<Stream> {
  const abort = new AbortController();
  const res = await fetch(`${url}/v1/approvals/stream`, { headers, signal: abort.signal });
  const s: Stream = { status: res.status, contentType: res.headers.get('content-type'), events: [], comments: [], ended: Promise.resolve(), close: () => abort.abort(), body: null };
  if (res.status !== 200) {
    s.body = await res.json().catch(() => null);
    return s;
  }
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  s.ended = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const lines = frame.split('\n');
          for (const l of lines) if (l.startsWith(':')) s.comments.push(l.slice(1).trim());
          const name = lines.find((l) => l.startsWith('event: '))?.slice(7);
          const data = lines.find((l) => l.startsWith('data: '))?.slice(6);
          if (name === 'round' && data) s.events.push(ApprovalStreamEvent.parse(JSON.parse(data)));
        }
      }
    } catch {
      // aborted by the test
    }
  })();
  return s;
}
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

let stack: TestStack;
let bot: { id: string; key: string };
let alice: { id: string; key: string };
let bob: { id: string; key: string };
let auditor: { id: string; key: string };
let otherTenantApprover: string;
const opened: Stream[] = [];
let viaSession: Stream;
const lastSeen = async (principalId: string) => (await stack.db.query<{ at: Date }>('SELECT last_seen_at AS at FROM console_sessions WHERE principal_id = $1', [principalId])).rows.map((r) => r.at.toISOString());

beforeAll(async () => {
  stack = await startTestStack();
  await activateYaml(stack, POLICY);
  bot = await addPrincipal(stack, { name: 'refund-bot', kind: 'agent', roles: ['agent'] });
  alice = await addPrincipal(stack, { name: 'alice', roles: ['approver'], groups: ['finance'] });
  bob = await addPrincipal(stack, { name: 'bob', roles: ['approver'], groups: ['finance'] });
  auditor = await addPrincipal(stack, { name: 'audrey', roles: ['auditor'], groups: ['finance'] });
  const other = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id: 'stream-other', name: 'Other tenant' });
  expect(other.status).toBe(201);
  const c = await api({ url: stack.url, key: other.body.admin_api_key }, 'POST', '/v1/principals', { name: 'carol', kind: 'person', roles: ['approver', 'admin'], groups: ['finance'] });
  otherTenantApprover = c.body.api_key;
}, 180_000);
afterAll(async () => {
  for (const s of opened) s.close();
  await stack?.stop();
});

const ask = async (i: number) => {
  const res = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'refund-bot' }, action: { tool: 'refund_tool', args: { i } } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.decision_id as string;
};
const keep = (s: Stream) => { opened.push(s); return s; };

describe('the inbox stream', () => {
  it("tells an approver of a new round, and of its close when another approver approves it; another tenant hears nothing", async () => {
    const mine = keep(await openStream(stack.url, bearer(alice.key)));
    expect(mine.status).toBe(200);
    expect(mine.contentType).toMatch(/^text\/event-stream/);
    // The console's way in: its session cookie (a GET: no CSRF token needed).
    const signIn = await fetch(`${stack.url}/v1/console/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ api_key: alice.key }) });
    expect(signIn.status).toBe(201);
    const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
    viaSession = keep(await openStream(stack.url, { cookie }));
    expect(viaSession.status).toBe(200);
    const foreign = keep(await openStream(stack.url, bearer(otherTenantApprover)));
    expect(foreign.status).toBe(200);

    const id = await ask(1);
    for (const s of [mine, viaSession]) {
      await eventually(async () => (s.events.some((e) => e.id === id && e.status === 'open') ? true : undefined), 60_000, 'the open round on the stream');
    }
    expect(mine.events.find((e) => e.id === id)).toEqual({ id, kind: 'decision', status: 'open', reason: 'requested' });

    const answer = await api({ url: stack.url, key: bob.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
    expect(answer.body, JSON.stringify(answer.body)).toMatchObject({ counted: true });
    for (const s of [mine, viaSession]) {
      await eventually(async () => (s.events.some((e) => e.id === id && e.status === 'closed') ? true : undefined), 30_000, 'the close on the stream');
    }
    expect(mine.events.filter((e) => e.id === id)).toEqual([
      { id, kind: 'decision', status: 'open', reason: 'requested' },
      { id, kind: 'decision', status: 'closed', reason: 'approved' },
    ]);
    // The inbox agrees: the round is gone.
    const inbox = await api({ url: stack.url, key: alice.key }, 'GET', '/v1/approvals');
    expect(inbox.body.items.map((x: { decision_id: string }) => x.decision_id)).not.toContain(id);
    expect(foreign.events).toEqual([]);
  }, 120_000);

  it('tells the other approvers when one answers a round that stays open (the answers so far changed), and the one who answered that it left their inbox', async () => {
    const aliceStream = keep(await openStream(stack.url, bearer(alice.key)));
    const bobStream = keep(await openStream(stack.url, bearer(bob.key)));
    const res = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'refund-bot' }, action: { tool: 'wire_tool', args: { to: 'ACME' } } });
    const id = res.body.decision_id as string;
    for (const s of [aliceStream, bobStream]) await eventually(async () => (s.events.some((e) => e.id === id && e.status === 'open') ? true : undefined), 60_000, 'the open round');
    expect((await api({ url: stack.url, key: bob.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' })).body).toMatchObject({ counted: true });
    await eventually(async () => (aliceStream.events.some((e) => e.id === id && e.reason === 'answered') ? true : undefined), 30_000, "alice hears of bob's answer");
    await eventually(async () => (bobStream.events.some((e) => e.id === id && e.reason === 'answered') ? true : undefined), 30_000, 'bob hears the round left his inbox');
    expect(aliceStream.events.filter((e) => e.id === id)).toEqual([
      { id, kind: 'decision', status: 'open', reason: 'requested' },
      { id, kind: 'decision', status: 'open', reason: 'answered' },
    ]);
    expect(bobStream.events.filter((e) => e.id === id)).toEqual([
      { id, kind: 'decision', status: 'open', reason: 'requested' },
      { id, kind: 'decision', status: 'closed', reason: 'answered' },
    ]);
  }, 120_000);

  it(`attack stream-wrong-tenant: another tenant's approver of a same-named group hears of none of this tenant's rounds`, async () => {
    const foreign = keep(await openStream(stack.url, bearer(otherTenantApprover)));
    const mine = keep(await openStream(stack.url, bearer(bob.key)));
    const ids = await Promise.all(Array.from({ length: 5 }, (_, i) => ask(100 + i)));
    await eventually(async () => (ids.every((id) => mine.events.some((e) => e.id === id)) ? true : undefined), 60_000, "every round on the rightful stream");
    const through = foreign.events.length;
    console.log(`attack stream-wrong-tenant: ${ids.length} attempts, ${through} got through`);
    expect(through).toBe(0);
    foreign.close();
    mine.close();
  }, 120_000);

  it('attack stream-no-auth / wrong-role / forged-cookie: refused before anything is sent', async () => {
    const bot2 = bot.key;
    const tries: Array<[string, Record<string, string>, number]> = [
      ['no key', {}, 401],
      ['malformed bearer', { authorization: 'Bearer nope' }, 401],
      ['wrong secret of a real prefix', bearer(`${alice.key.slice(0, 16)}${'B'.repeat(43)}`), 401],
      ['forged session cookie', { cookie: `cs_session=css_${randomBytes(32).toString('base64url').slice(0, 43)}` }, 401],
      ['malformed session cookie', { cookie: 'cs_session=admin' }, 401],
      ['agent key', bearer(bot2), 403],
      ['auditor key (same group)', bearer(auditor.key), 403],
    ];
    const results: Record<string, number> = {};
    let through = 0;
    for (const [name, headers, expected] of tries) {
      const s = await openStream(stack.url, headers);
      results[name] = s.status;
      if (s.status !== expected || s.contentType?.startsWith('text/event-stream')) {
        through++;
        s.close();
      }
    }
    const forged = tries.filter(([n]) => n.includes('cookie')).length;
    const roles = tries.filter(([, , e]) => e === 403).length;
    console.log(`attack stream-no-auth: ${tries.length - forged - roles} attempts, ${['no key', 'malformed bearer', 'wrong secret of a real prefix'].filter((n) => results[n] !== 401).length} got through`);
    console.log(`attack stream-forged-cookie: ${forged} attempts, ${tries.filter(([n, , e]) => n.includes('cookie') && results[n] !== e).length} got through`);
    console.log(`attack stream-wrong-role: ${roles} attempts, ${tries.filter(([n, , e]) => e === 403 && results[n] !== e).length} got through`);
    expect(results).toEqual(Object.fromEntries(tries.map(([n, , e]) => [n, e])));
    expect(through).toBe(0);
  });

  it(`attack stream-too-many: at most ${STREAMS_PER_PRINCIPAL} open streams per principal; a closed one frees its place`, async () => {
    const carolKey = (await addPrincipal(stack, { name: 'many-tabs', roles: ['approver'], groups: ['finance'] })).key;
    const held: Stream[] = [];
    for (let i = 0; i < STREAMS_PER_PRINCIPAL; i++) held.push(keep(await openStream(stack.url, bearer(carolKey))));
    expect(held.map((s) => s.status)).toEqual(Array(STREAMS_PER_PRINCIPAL).fill(200));
    const extra = 10;
    let through = 0;
    for (let i = 0; i < extra; i++) {
      const s = await openStream(stack.url, bearer(carolKey));
      if (s.status !== 429) {
        through++;
        s.close();
      } else {
        expect(s.body).toMatchObject({ code: 'rate_limited' });
      }
    }
    console.log(`attack stream-too-many: ${extra} attempts, ${through} got through`);
    expect(through).toBe(0);
    // Another principal is not limited by this one's streams.
    const other = keep(await openStream(stack.url, bearer(bob.key)));
    expect(other.status).toBe(200);
    held[0]!.close();
    const again = await eventually(async () => {
      const s = await openStream(stack.url, bearer(carolKey));
      if (s.status === 200) return keep(s);
      return undefined;
    }, 10_000, 'a place freed by the closed stream');
    expect(again.status).toBe(200);
  });

  it('pings every 15 s, and ends a stream whose key was revoked at its next ping (the key is checked again, not only at the start)', async () => {
    const dan = await addPrincipal(stack, { name: 'dan', roles: ['approver'], groups: ['finance'] });
    const second = await api({ url: stack.url, key: stack.key }, 'POST', '/v1/api-keys', { principal_id: dan.id, name: 'to revoke' });
    expect(second.status).toBe(201);
    const live = keep(await openStream(stack.url, bearer(dan.key)));
    const revoked = keep(await openStream(stack.url, bearer(second.body.api_key)));
    expect([live.status, revoked.status]).toEqual([200, 200]);
    expect((await api({ url: stack.url, key: stack.key }, 'DELETE', `/v1/api-keys/${second.body.id}`)).status).toBe(200);
    let ended = false;
    void revoked.ended.then(() => { ended = true; });
    const seen = await lastSeen(alice.id);
    await eventually(async () => (live.comments.includes('ping') && viaSession.comments.includes('ping') ? true : undefined), 40_000, 'a ping');
    // The session stream re-checks its session at each ping without counting as activity: an open tab alone
    // never keeps a session from idling out.
    expect(await lastSeen(alice.id)).toEqual(seen);
    await eventually(async () => (ended ? true : undefined), 40_000, 'the revoked stream to end');
    // Rounds asked after the revocation reach the live stream only.
    const id = await ask(200);
    await eventually(async () => (live.events.some((e) => e.id === id) ? true : undefined), 60_000, 'the round on the live stream');
    expect(revoked.events.some((e) => e.id === id)).toBe(false);
  }, 120_000);

  it('rebuilds the inbox from the log (platform admins): the same inbox after as before', async () => {
    const before = await api({ url: stack.url, key: bob.key }, 'GET', '/v1/approvals');
    expect(before.body.items.length).toBeGreaterThan(0);
    expect((await api({ url: stack.url, key: stack.key }, 'POST', '/v1/admin/inbox/rebuild')).status).toBe(403);
    const res = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/admin/inbox/rebuild');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.rows).toBeGreaterThanOrEqual(before.body.items.length);
    expect((await api({ url: stack.url, key: bob.key }, 'GET', '/v1/approvals')).body).toEqual(before.body);
    // The same through the CLI.
    const cli = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), 'admin', 'rebuild-projection', '--projection', 'inbox', '--json'],
        { cwd: ROOT, env: { ...process.env, COUNTERSIGN_URL: stack.url, COUNTERSIGN_API_KEY: stack.bootstrapKey } },
        (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
    });
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ rows: res.body.rows, events_per_second: expect.any(Number) });
    expect((await api({ url: stack.url, key: bob.key }, 'GET', '/v1/approvals')).body).toEqual(before.body);
  });

  it('ends every stream cleanly when the API shuts down', async () => {
    const s = keep(await openStream(stack.url, bearer(alice.key)));
    expect(s.status).toBe(200);
    await stack.api.stop('SIGTERM');
    // The response completes (the reader sees its end, not an error or a hang) and the process exits.
    await s.ended;
    expect(stack.api.output()).not.toMatch(/"level":"error"/);
  });
});
