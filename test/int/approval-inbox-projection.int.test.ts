import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, withTenant, type Db } from '../../services/events/db.ts';
import { openReviewsFor, openRoundsFor } from '../../services/decisions/approval-inbox.ts';
import { INBOX_CHANNEL } from '../../services/api/approval-stream-hub.ts';
import { createTestDatabase, eventually } from './harness.ts';

// The inbox projection (migration 0026) against the events that open and close rounds, written straight into
// the log as the application role (so the append's trigger runs as it does in production: row-level security,
// the role's grants). Each way a round or review closes; who may answer (groups, requesters, authors, answers
// given for someone under a delegation); the notices the stream is built on; and a rebuild from the log, in any
// batch size, gives the same rows as the live trigger.

type Ev = { type: string; data: Record<string, unknown> };
const T = 'acme';
const inHours = (h: number) => new Date(Date.now() + h * 3_600_000).toISOString();

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;
let owner: pg.Client;
let listener: pg.Client;
const notices: Array<Record<string, unknown>> = [];
const versions = new Map<string, number>();

/** Appends events to a stream in one INSERT (one statement: one trigger call, as one append). */
async function append(streamId: string, events: Ev[], tenant = T): Promise<void> {
  let v = versions.get(streamId) ?? 0;
  const rows = events.map((e) => {
    v += 1;
    return { stream_id: streamId, stream_version: v, event_id: `${streamId}/${v}`, type: e.type, tenant_id: tenant, data: e.data };
  });
  versions.set(streamId, v);
  await withTenant(db, tenant, (c) => c.query(
    `INSERT INTO events (stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash)
     SELECT x.stream_id, x.stream_version, x.event_id, x.type, 1, x.tenant_id, x.data, '{}'::jsonb, now(), NULL, 'sha256:' || md5(x.event_id) || md5(x.event_id)
       FROM jsonb_to_recordset($1::jsonb) AS x(stream_id text, stream_version int, event_id text, type text, tenant_id text, data jsonb)
      ORDER BY x.stream_version`,
    [JSON.stringify(rows)],
  ));
}

// The monitor's trigger (migration 0024) projects DecisionRequested too: its fields are there.
let runs = 0;
const requested = (by = 'prn_bot') => ({ type: 'DecisionRequested', data: { decision_id: `dec_${(runs += 1)}`, tenant_id: T, requested_by: by, request_digest: 'sha256:r', request: { agent: { id: 'bot' }, action: { tool: 'pay' } } } });
const round = (n: number, groups: string[], extra: Record<string, unknown> = {}): Ev => ({
  type: 'ApprovalRequested',
  data: { round: n, kind: 'approval', groups, quorum: 1, deadline: inHours(1), escalate_to: [], level_timeout_sec: 3600, on_timeout: 'DENY', requested_by: 'prn_bot', args_digest: null, snapshot_hash: 'sha256:s', ...extra },
});
const granted = (n: number, by: string, extra: Record<string, unknown> = {}): Ev => ({ type: 'ApprovalGranted', data: { round: n, approver_id: by, channel: 'api', at: new Date().toISOString(), ...extra } });

async function rows(): Promise<unknown[]> {
  const items = await owner.query(`SELECT item_key, tenant_id, kind, stream_id, decision_id, round, review_id, groups, deadline, quorum, approvals,
                                          with_requirements, excluded, answered, seq FROM approval_inbox ORDER BY item_key`);
  const audience = await owner.query('SELECT * FROM approval_inbox_audience ORDER BY item_key, audience');
  return [items.rows, audience.rows];
}
const openKeys = async () => (await owner.query<{ item_key: string }>('SELECT item_key FROM approval_inbox ORDER BY item_key')).rows.map((r) => r.item_key);
const noticesOf = (id: string) => notices.filter((n) => n['id'] === id).map((n) => `${String(n['status'])}:${String(n['reason'])}`);

beforeAll(async () => {
  database = await createTestDatabase();
  db = createPool(database.url, 4);
  owner = new pg.Client({ connectionString: database.adminUrl });
  await owner.connect();
  await owner.query(`SELECT set_config('countersign.system', 'inspection', false)`);
  listener = new pg.Client({ connectionString: database.url });
  await listener.connect();
  listener.on('notification', (m) => notices.push(JSON.parse(m.payload ?? '{}') as Record<string, unknown>));
  await listener.query(`LISTEN ${INBOX_CHANNEL}`);
}, 60_000);
afterAll(async () => {
  await listener?.end();
  await owner?.end();
  await db?.end();
  await database?.drop();
});

describe('the inbox projection of open rounds', () => {
  it('closes a round at its quorum, on a rejection, at expiry, and when the run ends', async () => {
    await append('run/dec_quorum', [requested(), round(1, ['fin'])]);
    await append('run/dec_quorum', [granted(1, 'prn_a')]);
    await append('run/dec_two', [requested(), round(1, ['fin'], { quorum: 2 })]);
    await append('run/dec_two', [granted(1, 'prn_a')]);
    await append('run/dec_reject', [requested(), round(1, ['fin'])]);
    await append('run/dec_reject', [{ type: 'ApprovalRejected', data: { round: 1, approver_id: 'prn_a', channel: 'api', at: new Date().toISOString() } }]);
    await append('run/dec_expire', [requested(), round(1, ['fin'])]);
    await append('run/dec_expire', [{ type: 'ApprovalExpired', data: { round: 1, fallback: 'DENY', at: new Date().toISOString() } }]);
    // A round of requirements: one requirement expiring does not end it; the run's DecisionFinalized does.
    await append('run/dec_req', [requested(), round(1, ['fin', 'legal'], { quorum: 2, requirements: [{ id: 1 }, { id: 2 }] })]);
    await append('run/dec_req', [{ type: 'ApprovalExpired', data: { round: 1, fallback: 'ALLOW', at: new Date().toISOString(), requirements: [1] } }]);
    expect(await openKeys()).toContain('run/dec_req/1');
    await append('run/dec_req', [granted(1, 'prn_a', { requirements: [2] }), granted(1, 'prn_b', { requirements: [2] })]);
    expect(await openKeys()).toContain('run/dec_req/1');
    await append('run/dec_req', [{ type: 'DecisionFinalized', data: { decision: 'ALLOW', via: 'approval' } }]);

    expect(await openKeys()).toEqual(['run/dec_two/1']);
    const two = (await owner.query('SELECT approvals, answered FROM approval_inbox WHERE item_key = $1', ['run/dec_two/1'])).rows[0];
    expect(two).toEqual({ approvals: 1, answered: ['prn_a'] });
    await eventually(async () => (noticesOf('dec_req').length === 6 ? true : undefined), 10_000, 'the notices');
    expect(noticesOf('dec_quorum')).toEqual(['open:requested', 'closed:approved']);
    // Still open: it leaves the inbox of who answered, and the others hear that its answers changed.
    expect(noticesOf('dec_two')).toEqual(['open:requested', 'closed:answered', 'open:answered']);
    expect(notices.find((n) => n['id'] === 'dec_two' && n['status'] === 'closed' && n['reason'] === 'answered')!['only']).toEqual(['prn_a']);
    expect(notices.find((n) => n['id'] === 'dec_two' && n['status'] === 'open' && n['reason'] === 'answered')).toMatchObject({ groups: ['fin'], answered: ['prn_a'], only: null });
    expect(noticesOf('dec_reject')).toEqual(['open:requested', 'closed:rejected']);
    expect(noticesOf('dec_expire')).toEqual(['open:requested', 'closed:expired']);
    // Each approval leaves its approver's inbox; the round closes for everyone when the run ends.
    expect(noticesOf('dec_req')).toEqual(['open:requested', 'closed:answered', 'open:answered', 'closed:answered', 'open:answered', 'closed:approved']);
  });

  it('moves a round to the next level on escalation, and lists it for the new group (soonest deadline first)', async () => {
    await append('run/dec_esc', [requested(), round(1, ['fin'], { deadline: inHours(0.5) })]);
    await append('run/dec_esc', [{ type: 'ApprovalEscalated', data: { round: 1, level: 1, groups: ['fin', 'leads'], deadline: inHours(3) } }]);
    const audience = (await owner.query<{ audience: string }>('SELECT audience FROM approval_inbox_audience WHERE item_key = $1 ORDER BY audience', ['run/dec_esc/1'])).rows.map((r) => r.audience);
    expect(audience).toEqual(['group/fin', 'group/leads']);
    const lead = await withTenant(db, T, (c) => openRoundsFor(c, { tenant_id: T, id: 'prn_lead', groups: ['leads'] }, 10));
    expect(lead.map((r) => r.decision_id)).toEqual(['dec_esc']);
    const fin = await withTenant(db, T, (c) => openRoundsFor(c, { tenant_id: T, id: 'prn_c', groups: ['fin', 'leads'] }, 10));
    // dec_two (1h) before dec_esc (3h); a caller of both groups sees each round once.
    expect(fin.map((r) => r.decision_id)).toEqual(['dec_two', 'dec_esc']);
    await eventually(async () => (noticesOf('dec_esc').length === 2 ? true : undefined), 10_000, 'the escalation notice');
    expect(noticesOf('dec_esc')).toEqual(['open:requested', 'open:escalated']);
  });

  it('opens an override round after the DENY in the same append, and closes it when the override is decided', async () => {
    await append('run/dec_deny', [requested(), round(1, ['fin'])]);
    await append('run/dec_deny', [
      { type: 'ApprovalRejected', data: { round: 1, approver_id: 'prn_a', channel: 'api', at: new Date().toISOString() } },
      { type: 'DecisionFinalized', data: { decision: 'DENY', via: 'rejection' } },
      { type: 'OverrideRequested', data: { round: 2, requested_by: 'prn_bot', justification: 'urgent', at: new Date().toISOString() } },
      round(2, ['ops'], { kind: 'override' }),
    ]);
    expect((await owner.query('SELECT kind FROM approval_inbox WHERE item_key = $1', ['run/dec_deny/2'])).rows).toEqual([{ kind: 'override' }]);
    expect(await openKeys()).not.toContain('run/dec_deny/1');
    await append('run/dec_deny', [{ type: 'OverrideDenied', data: { round: 2, reason: 'no', at: new Date().toISOString() } }]);
    expect(await openKeys()).not.toContain('run/dec_deny/2');
    await append('run/dec_grant', [requested(), { type: 'DecisionFinalized', data: { decision: 'DENY', via: 'policy' } }, round(2, ['ops'], { kind: 'override' })]);
    await append('run/dec_grant', [granted(2, 'prn_o'), { type: 'OverrideGranted', data: { round: 2, at: new Date().toISOString() } }]);
    expect(await openKeys()).not.toContain('run/dec_grant/2');
    await eventually(async () => (noticesOf('dec_grant').length === 2 ? true : undefined), 10_000, 'the override notices');
    expect(noticesOf('dec_deny')).toEqual(['open:requested', 'closed:rejected', 'open:requested', 'closed:rejected']);
    expect(notices.filter((n) => n['id'] === 'dec_deny').map((n) => n['kind'])).toEqual(['decision', 'decision', 'override', 'override']);
  });

  it('keeps a round from its requesters and from whoever answered it or had it answered for them (delegation)', async () => {
    await append('run/dec_del', [requested('prn_req'), round(1, ['fin'], { quorum: 3, requested_by: 'prn_req' })]);
    await append('run/dec_del', [granted(1, 'prn_delegate', { on_behalf_of: 'prn_away', delegation_id: 'del_1' })]);
    const inboxOf = async (id: string) => (await withTenant(db, T, (c) => openRoundsFor(c, { tenant_id: T, id, groups: ['fin'] }, 50))).map((r) => r.decision_id);
    expect(await inboxOf('prn_other')).toContain('dec_del');
    for (const who of ['prn_req', 'prn_delegate', 'prn_away']) expect(await inboxOf(who)).not.toContain('dec_del');
    // Another tenant's approver of a group of the same name sees none of them (row-level security and the tenant key).
    expect(await withTenant(db, 'other', (c) => openRoundsFor(c, { tenant_id: 'other', id: 'prn_x', groups: ['fin'] }, 50))).toEqual([]);
    expect(await withTenant(db, 'other', (c) => openRoundsFor(c, { tenant_id: T, id: 'prn_x', groups: ['fin'] }, 50))).toEqual([]);
  });

  it('opens activation reviews for admins who wrote none of the change, and closes them by answer or expiry', async () => {
    const review = (id: string) => ({ type: 'PolicyActivationRequested', data: { policy_id: 'p', version: 2, review_id: id, document_hash: 'sha256:d', requested_by: 'prn_author', authors: ['prn_author', 'prn_coauthor'], deadline: inHours(24) } });
    const answer = (type: string, id: string) => ({ type, data: { policy_id: 'p', version: 2, review_id: id, by: 'prn_admin2', at: new Date().toISOString() } });
    await append('policy/acme/p', [review('rv_ok')]);
    await append('policy/acme/p', [answer('PolicyActivationApproved', 'rv_ok'), review('rv_no')]);
    await append('policy/acme/p', [answer('PolicyActivationRejected', 'rv_no'), review('rv_late')]);
    await append('policy/acme/p', [{ type: 'PolicyActivationExpired', data: { policy_id: 'p', version: 2, review_id: 'rv_late', at: new Date().toISOString() } }, review('rv_open')]);
    const reviewsOf = async (id: string) => (await withTenant(db, T, (c) => openReviewsFor(c, { tenant_id: T, id }, 10, new Date()))).map((r) => r.review_id);
    expect(await reviewsOf('prn_admin2')).toEqual(['rv_open']);
    expect(await reviewsOf('prn_author')).toEqual([]);
    expect(await reviewsOf('prn_coauthor')).toEqual([]);
    await eventually(async () => (noticesOf('rv_open').length === 1 ? true : undefined), 10_000, 'the review notices');
    expect(['rv_ok', 'rv_no', 'rv_late'].map(noticesOf)).toEqual([['open:requested', 'closed:approved'], ['open:requested', 'closed:rejected'], ['open:requested', 'closed:expired']]);
  });

  it('a round whose audience does not fit a notification is announced without it (wide), never refused', async () => {
    const groups = Array.from({ length: 400 }, (_, i) => `a-rather-long-group-name-${i}`);
    await append('run/dec_wide', [requested(), round(1, groups)]);
    await eventually(async () => (noticesOf('dec_wide').length === 1 ? true : undefined), 10_000, 'the wide notice');
    const n = notices.find((x) => x['id'] === 'dec_wide')!;
    expect(n).toMatchObject({ status: 'open', reason: 'requested', wide: true, key: 'run/dec_wide/1' });
    expect(n['groups']).toBeUndefined();
    expect((await owner.query('SELECT cardinality(groups) AS n FROM approval_inbox WHERE item_key = $1', ['run/dec_wide/1'])).rows).toEqual([{ n: 400 }]);
  });

  it('rebuilt from the log, in any batch size, it has exactly the rows the live trigger left', async () => {
    const live = await rows();
    const before = notices.length;
    for (const batch of [20000, 1, 3]) {
      const res = await owner.query<{ events_read: string; rows_projected: string }>('SELECT * FROM countersign_inbox_rebuild($1)', [batch]);
      expect(Number(res.rows[0]!.rows_projected)).toBe((live[0] as unknown[]).length);
      expect(await rows()).toEqual(live);
    }
    // A rebuild tells no stream anything: nothing opened or closed.
    await new Promise((r) => setTimeout(r, 300));
    expect(notices.length).toBe(before);
  });
});
