import { randomBytes } from 'node:crypto';
import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest, loadAttestationSecret, newNonce } from '../../services/decisions/attestation.ts';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { sha256Digest } from '../../services/receipts/canonical.ts';
import { answerUpdate, type AnswerInput } from '../../workflows/decision-workflow.ts';
import { activateYaml, addPrincipal, api, eventually, startTestStack, type TestStack } from './harness.ts';

// An answer carries the approver's roles and groups as the API read them, and the run decides with them before
// the database has confirmed them: the append that would write the answer checks them first. These answers are
// attested (the test holds the API's secret, as someone who stole it would) or forged, and claim an identity
// the database does not hold: none may count, and an answer beside them must count as the database says.

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: attested-identity, name: Attested identities }
scope: { level: tenant }
rules:
  - name: one-approver
    match: { tool: change_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [ops], quorum: 1, timeout: 1h }
  - name: two-approvers
    match: { tool: payout_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [ops], quorum: 2, timeout: 1h }
  - name: short-round
    match: { tool: short_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [ops], quorum: 1, timeout: 4s }
`;

type Who = { id: string; key: string };
type Ev = { type: string; data: Record<string, unknown> };

describe('an answer decided with the identity the API attested', () => {
  let stack: TestStack;
  let connection: Connection;
  let client: Client;
  let agent: Who, ops1: Who, ops2: Who, finance: Who, bot: Who, gone: Who, wider: Who;
  let secret: Buffer;

  beforeAll(async () => {
    stack = await startTestStack();
    await activateYaml(stack, POLICY);
    agent = await addPrincipal(stack, { name: 'bot', kind: 'agent', roles: ['agent'] });
    ops1 = await addPrincipal(stack, { name: 'ops-1', roles: ['approver'], groups: ['ops'] });
    ops2 = await addPrincipal(stack, { name: 'ops-2', roles: ['approver'], groups: ['ops'] });
    finance = await addPrincipal(stack, { name: 'finance-1', roles: ['approver'], groups: ['finance'] });
    bot = await addPrincipal(stack, { name: 'other-bot', kind: 'agent', roles: ['agent'] });
    gone = await addPrincipal(stack, { name: 'ops-gone', roles: ['approver'], groups: ['ops'] });
    wider = await addPrincipal(stack, { name: 'ops-wider', roles: ['approver'], groups: ['ops', 'finance'] });
    await stack.db.query('UPDATE principals SET disabled_at = now() WHERE id = $1', [gone.id]);
    secret = loadAttestationSecret(stack.env['COUNTERSIGN_KEYS_DIR']!);
    connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
    client = new Client({ connection });
  }, 180_000);
  afterAll(async () => {
    await connection?.close();
    await stack?.stop();
  });

  const ask = async (tool: string, n: number) => {
    const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool, args: { n } } });
    expect(res.body.status, JSON.stringify(res.body)).toBe('pending_approval');
    const id = res.body.decision_id as string;
    await eventually(async () => ((await events(id)).some((e) => e.type === 'ApprovalRequested') ? true : undefined), 30_000, 'the round');
    return { id, args: { n }, snapshot: res.body.snapshot_hash as string };
  };
  const events = async (id: string) => (await stack.db.query<Ev>('SELECT type, data FROM events WHERE stream_id = $1 ORDER BY stream_version', [`run/${id}`])).rows;
  const claim = (run: { id: string; args: unknown; snapshot: string }, approverId: string, roles: string[], groups: string[], key = secret): AnswerInput => attest(key, {
    kind: 'answer' as const, decision_id: run.id, nonce: newNonce(), round: 1, verdict: 'approve' as const, channel: 'api' as const,
    approver_id: approverId, approver_roles: roles, approver_groups: groups, tenant_id: 'default',
    args_digest: sha256Digest(run.args), snapshot_hash: run.snapshot,
  }, new Date());
  const send = (run: { id: string }, message: AnswerInput) =>
    client.workflow.getHandle(workflowIdFor('default', run.id)).executeUpdate(answerUpdate, { args: [message] }).then((r) => ({ ok: true as const, r }), (e: unknown) => ({ ok: false as const, e }));

  it('an identity the database does not hold is decided again with the one it does, and refused; nothing is written', async () => {
    const cases: Array<[string, (run: { id: string; args: unknown; snapshot: string }) => AnswerInput, RegExp]> = [
      ['groups not held', (run) => claim(run, finance.id, ['approver'], ['ops']), /group/],
      ['roles not held', (run) => claim(run, bot.id, ['approver'], ['ops']), /approver role|role/],
      ['a disabled approver', (run) => claim(run, gone.id, ['approver'], ['ops']), /disabled/],
      ['a principal that does not exist', (run) => claim(run, 'prn_nobody', ['approver'], ['ops']), /does not exist/],
      ['a forged attestation', (run) => claim(run, ops1.id, ['approver'], ['ops'], randomBytes(32)), /attestation/],
    ];
    let through = 0;
    for (const [what, make, reason] of cases) {
      const run = await ask('change_tool', cases.findIndex((c) => c[0] === what));
      // Notices of the round may still be recorded meanwhile; nothing else may be.
      const settled = (es: Ev[]) => es.filter((e) => !e.type.startsWith('Notification'));
      const before = settled(await events(run.id));
      const res = await send(run, make(run));
      if (res.ok) through += 1;
      else {
        expect(res.e, what).toBeInstanceOf(WorkflowUpdateFailedError);
        expect(String((res.e as WorkflowUpdateFailedError).cause?.message), what).toMatch(reason);
      }
      const after = await events(run.id);
      if (after.some((e) => e.type === 'ApprovalGranted' || e.type === 'DecisionFinalized')) through += 1;
      expect(settled(after), what).toEqual(before);
      expect((await api(stack, 'GET', `/v1/decisions/${run.id}`)).body.status, what).toBe('pending_approval');
      // The round still counts a rightful answer.
      expect((await send(run, claim(run, ops1.id, ['approver'], ['ops']))).ok, what).toBe(true);
      expect((await api(stack, 'GET', `/v1/decisions/${run.id}?wait=10`)).body).toMatchObject({ decision: 'ALLOW', status: 'final' });
    }
    console.log(`attack attested-identity-not-held: ${cases.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 180_000);

  it('beside a rightful answer in the same batch, a false identity never makes the quorum', async () => {
    let through = 0;
    const rounds = 4;
    for (let i = 0; i < rounds; i++) {
      const run = await ask('payout_tool', 100 + i);
      // Both reach the run together: the false one may be decided first and counted in the view until its append.
      const [bad, good] = await Promise.all([send(run, claim(run, finance.id, ['approver'], ['ops'])), send(run, claim(run, ops1.id, ['approver'], ['ops']))]);
      if (bad.ok) through += 1;
      expect(good.ok).toBe(true);
      const granted = (await events(run.id)).filter((e) => e.type === 'ApprovalGranted').map((e) => e.data['approver_id']);
      if (granted.includes(finance.id)) through += 1;
      expect(granted).toEqual([ops1.id]);
      expect((await api(stack, 'GET', `/v1/decisions/${run.id}`)).body.status).toBe('pending_approval');
      expect((await send(run, claim(run, ops2.id, ['approver'], ['ops']))).ok).toBe(true);
      expect((await api(stack, 'GET', `/v1/decisions/${run.id}?wait=10`)).body).toMatchObject({ decision: 'ALLOW', status: 'final' });
    }
    console.log(`attack attested-identity-beside-rightful: ${rounds} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 180_000);

  it('an identity the API read before a change of groups counts as the database has it now', async () => {
    const run = await ask('change_tool', 200);
    // The API saw ops only; the database has ops and finance: decided again with both, and counted.
    const res = await send(run, claim(run, wider.id, ['approver'], ['ops']));
    expect(res.ok).toBe(true);
    expect((await api(stack, 'GET', `/v1/decisions/${run.id}?wait=10`)).body).toMatchObject({ decision: 'ALLOW', status: 'final' });
    expect((await events(run.id)).filter((e) => e.type === 'ApprovalGranted').map((e) => e.data['approver_id'])).toEqual([wider.id]);
  });

  it('through the API, an answer is decided with the identity the API read, and counts once', async () => {
    const run = await ask('change_tool', 300);
    const res = await api({ url: stack.url, key: ops2.key }, 'POST', `/v1/decisions/${run.id}/approvals`, { verdict: 'approve' });
    expect(res.body, JSON.stringify(res.body)).toMatchObject({ counted: true, decision_status: 'final' });
    const history = await client.workflow.getHandle(workflowIdFor('default', run.id)).fetchHistory();
    // No separate authorize step on the answer's path: the append confirmed the identity.
    const types = history.events!.filter((e) => e.markerRecordedEventAttributes).map((e) => {
      const data = e.markerRecordedEventAttributes!.details!['data']!.payloads![0]!.data!;
      return (JSON.parse(new TextDecoder().decode(data)) as { activity_type: string }).activity_type;
    });
    expect(types.length).toBeGreaterThan(0);
    expect(types.filter((t) => t !== 'appendRunEvents')).toEqual([]);
  });

  /**
   * The deadline passes while an answer decided with its attested identity waits for the append to confirm it:
   * the test holds the principals table so that confirmation cannot finish until after the deadline (each
   * approver is new, so the worker has it in no cache and must read it). A confirmed answer, given before the
   * deadline, counts; a refused one never does, and the round then expires as if it had never come.
   */
  it('the deadline passing while an answer awaits confirmation: confirmed, it counts; refused, the round expires', async () => {
    const outcomes: Array<[string, string[], 'ALLOW' | 'DENY']> = [['late-ops', ['ops'], 'ALLOW'], ['late-finance', ['finance'], 'DENY']];
    let through = 0;
    for (const [name, groups, expected] of outcomes) {
      const approver = await addPrincipal(stack, { name, roles: ['approver'], groups });
      const run = await ask('short_tool', 400 + outcomes.findIndex((o) => o[0] === name));
      const deadline = Date.parse(String((await events(run.id)).find((e) => e.type === 'ApprovalRequested')!.data['deadline']));
      const held = await stack.db.connect();
      let sent: ReturnType<typeof send>;
      try {
        await held.query('BEGIN');
        await held.query('LOCK TABLE principals IN ACCESS EXCLUSIVE MODE');
        expect(Date.now()).toBeLessThan(deadline - 1000);
        // Both claim ops, as an API would have read it for the first; the second holds finance only.
        sent = send(run, claim(run, approver.id, ['approver'], ['ops']));
        await new Promise((r) => setTimeout(r, deadline - Date.now() + 1500));
        // Nothing of the answer is written while its identity is unconfirmed, and the deadline has not acted.
        expect((await events(run.id)).map((e) => e.type).filter((t) => ['ApprovalGranted', 'ApprovalExpired', 'DecisionFinalized'].includes(t)), name).toEqual([]);
      } finally {
        await held.query('COMMIT');
        held.release();
      }
      const res = await sent!;
      const final = await api(stack, 'GET', `/v1/decisions/${run.id}?wait=20`);
      expect(final.body, name).toMatchObject({ decision: expected, status: 'final' });
      const after = await events(run.id);
      const granted = after.filter((e) => e.type === 'ApprovalGranted');
      if (expected === 'ALLOW') {
        expect(res.ok, name).toBe(true);
        expect(granted.map((e) => e.data['approver_id'])).toEqual([approver.id]);
        // Given before the deadline: the time it was decided at, not the time its append could confirm it.
        expect(Date.parse(String(granted[0]!.data['at']))).toBeLessThan(deadline);
      } else {
        if (res.ok || granted.length > 0) through += 1;
        expect(final.body.reason_code).toBe('approval_expired');
      }
    }
    console.log(`attack attested-identity-past-deadline: 1 attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 120_000);
});
