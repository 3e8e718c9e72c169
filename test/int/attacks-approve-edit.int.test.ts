import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest, loadAttestationSecret, newNonce } from '../../services/decisions/attestation.ts';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { sha256Digest } from '../../services/receipts/canonical.ts';
import { Countersign } from '../../services/sdk/index.ts';
import { answerUpdate, type AnswerInput } from '../../workflows/decision-workflow.ts';
import { activateYaml, addPrincipal, api, eventually, ROOT, startTestStack, type TestStack } from './harness.ts';

// Approve with edit against the real stack: an edit refused for loosening, one that counts (the waiting agent
// and the SDK's guard get the edited arguments; the receipt and audit replay show both digests), and the
// attacks on it: forged, replayed, oversized, another tenant's, looser. Each prints its line and asserts 0.

const RUN = randomBytes(4).toString('hex');
const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: edits, name: Refunds approvers may lower }
scope: { level: tenant }
rules:
  - name: small
    match: { tool: edit_refund_tool }
    condition: action.args.amount <= 500
    decision: ALLOW
  - name: big
    match: { tool: edit_refund_tool }
    condition: action.args.amount > 500 && action.args.amount <= 5000
    decision: REQUIRE_APPROVAL
    constraints: { max_runtime_sec: 600 }
    approval: { approvers: [finance], quorum: 1, timeout: 1h }
  - name: cfo
    match: { tool: edit_refund_tool }
    condition: action.args.amount > 2000 && action.args.amount <= 5000
    decision: REQUIRE_APPROVAL
    approval: { approvers: [cfo], quorum: 1, timeout: 1h }
  - name: huge
    match: { tool: edit_refund_tool }
    condition: action.args.amount > 5000
    decision: DENY
  - name: wipes
    match: { tool: edit_wipe_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [finance], quorum: 1, timeout: 1h, allow_edits: false }
  - name: pairs
    match: { tool: edit_pair_tool }
    decision: REQUIRE_APPROVAL
    condition: action.args.amount > 500
    approval: { approvers: [finance], quorum: 2, timeout: 1h }
  - name: small-pairs
    match: { tool: edit_pair_tool }
    condition: action.args.amount <= 500
    decision: ALLOW
`;

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'services/cli/countersign.mjs'), ...args], { cwd: ROOT, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let stack: TestStack;
let bot: { id: string; key: string };
let ann: { id: string; key: string };
let connection: Connection;
let client: Client;

beforeAll(async () => {
  stack = await startTestStack();
  await activateYaml(stack, POLICY);
  bot = await addPrincipal(stack, { name: 'edit-bot', kind: 'agent', roles: ['agent'] });
  ann = await addPrincipal(stack, { name: 'ann', roles: ['approver'], groups: ['finance'] });
  connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
  client = new Client({ connection });
}, 180_000);
afterAll(async () => {
  await connection?.close();
  await stack?.stop();
});

const as = (key: string) => ({ url: stack.url, key });
const refund = (amount: number, order = `o-${randomBytes(3).toString('hex')}`) =>
  ({ agent: { id: 'edit-bot' }, action: { tool: 'edit_refund_tool', operation: 'Refund', args: { order, amount } }, idempotency_key: `${order}/${RUN}` });
const types = async (id: string) => (await stack.db.query<{ type: string }>('SELECT type FROM events WHERE stream_id = $1 ORDER BY stream_version', [`run/${id}`])).rows.map((r) => r.type);
async function pending(amount = 650, tool = 'edit_refund_tool') {
  const body = tool === 'edit_refund_tool' ? refund(amount) : { agent: { id: 'edit-bot' }, action: { tool, args: { paths: ['/a', '/b'] } } };
  const res = await api(as(bot.key), 'POST', '/v1/decisions', body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body.decision).toBe('REQUIRE_APPROVAL');
  const id = res.body.decision_id as string;
  await eventually(async () => ((await types(id)).includes('ApprovalRequested') ? true : undefined), 60_000, 'the round');
  return { id, snapshot: res.body.snapshot_hash as string, args: body.action.args as Record<string, any> };
}
const approve = (key: string, id: string, edited_args?: unknown) => api(as(key), 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve', ...(edited_args !== undefined ? { edited_args } : {}) });
const stillPending = async (id: string) => (await api(as(bot.key), 'GET', `/v1/decisions/${id}`)).body.status === 'pending_approval' && !(await types(id)).includes('ApprovalGranted');

describe('approve with edit', () => {
  it('an edit refused for loosening: denied amounts, ALLOW-looser amounts, a rule the round did not ask, a rule that forbids edits', async () => {
    const run = await pending(650);
    const cases: Array<[unknown, RegExp]> = [
      [{ order: run.args.order, amount: 9000 }, /denied by rule huge/],
      [{ order: run.args.order, amount: 100 }, /would be ALLOW by rule small, looser than the REQUIRE_APPROVAL/],
      [{ order: run.args.order, amount: 3000 }, /approval by rule cfo .* did not ask for/],
    ];
    for (const [edited, why] of cases) {
      const res = await approve(ann.key, run.id, edited);
      expect(res.status, JSON.stringify(res.body)).toBe(409);
      expect(res.body.detail).toMatch(why);
      expect(res.body.counted).toBe(false);
    }
    const wipe = await pending(0, 'edit_wipe_tool');
    const refusedWipe = await approve(ann.key, wipe.id, { paths: ['/a'] });
    expect(refusedWipe.status).toBe(409);
    expect(refusedWipe.body.detail).toMatch(/rule wipes does not allow approving changed arguments/);
    expect(await stillPending(run.id)).toBe(true);
    expect(await stillPending(wipe.id)).toBe(true);
  }, 120_000);

  it('an edit that counts: the waiting agent gets the edited arguments; receipt and replay show both digests', async () => {
    const run = await pending(650);
    const waiting = api(as(bot.key), 'GET', `/v1/decisions/${run.id}?wait=60`);
    const edited = { order: run.args.order, amount: 600 };
    // The approver's context: the constraints that will apply, and the agent's last decisions for the same tool.
    const inbox = (await api(as(ann.key), 'GET', '/v1/approvals')).body.items as Array<Record<string, any>>;
    const item = inbox.find((x) => x['decision_id'] === run.id)!;
    expect(item.constraints).toEqual({ max_runtime_sec: 600 });
    expect(item.history.length).toBeGreaterThan(0);
    expect(item.history.length).toBeLessThanOrEqual(5);
    expect(item.history.map((h: { decision_id: string }) => h.decision_id)).not.toContain(run.id);
    expect(item.history[0]).toMatchObject({ decision_id: expect.stringMatching(/^dec_/), operation: 'Refund' });
    // Through the CLI, recorded as channel cli.
    const env = { ...stack.env, COUNTERSIGN_URL: stack.url, COUNTERSIGN_API_KEY: ann.key };
    const out = await cli(['approvals', 'approve', run.id, '--edit-args', JSON.stringify(edited), '--json'], env);
    expect(out.code, out.stderr + out.stdout).toBe(0);
    const final = await waiting;
    expect(final.body, JSON.stringify(final.body)).toMatchObject({
      decision: 'ALLOW_WITH_CONSTRAINTS', status: 'final', edited_args: edited, edited_args_digest: sha256Digest(edited), constraints: { max_runtime_sec: 600 }, reason_code: 'approved',
    });
    const receipt = await eventually(async () => {
      const r = await api(as(bot.key), 'GET', `/v1/decisions/${run.id}/receipt`);
      return r.status === 200 && r.body.receipt?.status === 'final' ? r.body.receipt : undefined;
    }, 60_000, 'the receipt');
    expect(receipt.action.args_digest).toBe(sha256Digest(run.args));
    expect(receipt.action.edited_args_digest).toBe(sha256Digest(edited));
    expect(receipt.approvals[0]).toMatchObject({ approver_id: ann.id, channel: 'cli', edited_args_digest: sha256Digest(edited) });
    const replay = await eventually(async () => {
      const r = await cli(['audit', 'replay', '--from', 'postgres', '--json'], stack.env);
      const report = JSON.parse(r.stdout);
      return report.edited_runs?.some((x: { decision_id: string }) => x.decision_id === run.id) ? { r, report } : undefined;
    }, 60_000, 'replay');
    expect(replay.report.divergences).toEqual([]);
    expect(replay.report.edited_runs.find((x: { decision_id: string }) => x.decision_id === run.id)).toEqual({
      decision_id: run.id, args_digest: sha256Digest(run.args), edited_args_digest: sha256Digest(edited), approved_by: [ann.id],
    });
  }, 180_000);

  it("the SDK's guard runs the tool with the edited arguments (applyEdit), and never with the asked ones without it", async () => {
    const cs = new Countersign({ url: stack.url, apiKey: bot.key });
    const calls: number[] = [];
    const order = `sdk-${RUN}`;
    const tool = cs.guard(async (o: string, amount: number) => { calls.push(amount); return { refunded: amount, o }; },
      (o: string, amount: number) => refund(amount, o),
      { applyEdit: (e, [o]): [string, number] => [o, e['amount'] as number] });
    const ran = tool(order, 700);
    const id = await eventually(async () => (await stack.db.query<{ stream_id: string }>(
      "SELECT stream_id FROM events WHERE type = 'ApprovalRequested' AND stream_id IN (SELECT stream_id FROM events WHERE type = 'DecisionRequested' AND data->'request'->'action'->'args'->>'order' = $1)", [order])).rows[0]?.stream_id.slice(4), 60_000, 'the round');
    expect((await approve(ann.key, id, { order, amount: 550 })).body).toMatchObject({ counted: true, decision_status: 'final' });
    await expect(ran).resolves.toEqual({ refunded: 550, o: order });
    expect(calls).toEqual([550]);

    const bare = cs.guard(async () => { calls.push(-1); }, () => refund(800, `bare-${RUN}`));
    // Settled at once, so the refusal is this test's to inspect and never an unhandled rejection meanwhile.
    const running = bare().then(() => null, (e: unknown) => e);
    const bareId = await eventually(async () => (await stack.db.query<{ stream_id: string }>(
      "SELECT stream_id FROM events WHERE type = 'ApprovalRequested' AND stream_id IN (SELECT stream_id FROM events WHERE type = 'DecisionRequested' AND data->'request'->'action'->'args'->>'order' = $1)", [`bare-${RUN}`])).rows[0]?.stream_id.slice(4), 60_000, 'the round');
    await approve(ann.key, bareId, { order: `bare-${RUN}`, amount: 700 });
    expect(await running).toMatchObject({ name: 'ArgumentsEdited', editedArgs: { order: `bare-${RUN}`, amount: 700 } });
    expect(calls).toEqual([550]);
  }, 120_000);
});

describe('attacks on approve with edit', () => {
  const secret = () => loadAttestationSecret(stack.env['COUNTERSIGN_KEYS_DIR']!);
  const message = (run: { id: string; snapshot: string; args: unknown }, edit: AnswerInput['edit'], key = secret()): AnswerInput => attest(key, {
    kind: 'answer' as const, decision_id: run.id, nonce: newNonce(), round: 1, verdict: 'approve' as const, channel: 'api' as const, approver_id: ann.id, approver_roles: ['approver'], approver_groups: ['finance'], tenant_id: 'default',
    args_digest: sha256Digest(run.args), snapshot_hash: run.snapshot, ...(edit ? { edit } : {}),
  }, new Date());
  const send = (id: string, m: AnswerInput) => client.workflow.getHandle(workflowIdFor('default', id)).executeUpdate(answerUpdate, { args: [m] }).then(() => null, (e: unknown) => e);
  /** A well-formed edit as the API would build it (the evaluation of amount 600 under rule big). */
  const goodEdit = async (run: { id: string }, args: Record<string, unknown>) => {
    const ev = (await stack.db.query<{ data: { evaluation: Record<string, unknown> } }>("SELECT data FROM events WHERE stream_id = $1 AND type = 'PolicyEvaluated'", [`run/${run.id}`])).rows[0]!.data.evaluation;
    return { args, args_digest: sha256Digest(args), evaluation: ev } as NonNullable<AnswerInput['edit']>;
  };

  it('forged edits straight to Temporal: a wrong MAC, arguments swapped after the MAC, a digest that is not the arguments\'', async () => {
    const run = await pending(650);
    const edit = await goodEdit(run, { order: run.args.order, amount: 600 });
    const wrongKey = message(run, edit, randomBytes(32));
    const swapped = { ...message(run, edit), edit: { ...edit, args: { order: run.args.order, amount: 4000 } } };
    const badDigest = message(run, { ...edit, args: { order: run.args.order, amount: 4000 } });
    let through = 0;
    for (const m of [wrongKey, swapped, badDigest]) {
      const err = await send(run.id, m);
      if (!(err instanceof WorkflowUpdateFailedError)) through += 1;
    }
    if (!(await stillPending(run.id))) through += 1;
    console.log(`attack forged-edit: 3 attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 120_000);

  it('replayed edits: the same message twice, and onto another run', async () => {
    const a = await pending(650);
    const b = await pending(650);
    const m = message(a, await goodEdit(a, { order: a.args.order, amount: 600 }));
    let through = 0;
    // Onto another run (its own decision id is under the MAC): refused, nothing written.
    const elsewhere = await send(b.id, { ...m });
    if (!(elsewhere instanceof WorkflowUpdateFailedError) || !/another decision/.test(String(elsewhere.cause?.message))) through += 1;
    expect(await send(a.id, m)).toBeNull(); // counted once on its own run
    const again = await send(a.id, m);
    if (!(again instanceof WorkflowUpdateFailedError)) through += 1;
    const viaApi = await approve(ann.key, a.id, { order: a.args.order, amount: 600 });
    if (viaApi.status !== 409) through += 1;
    if (!(await stillPending(b.id))) through += 1;
    const granted = (await stack.db.query("SELECT 1 FROM events WHERE stream_id = $1 AND type = 'ApprovalGranted'", [`run/${a.id}`])).rowCount;
    if (granted !== 1) through += 1;
    console.log(`attack replayed-edit: 3 attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 120_000);

  it('oversized and malformed edited arguments are refused and change nothing', async () => {
    const run = await pending(650);
    const attempts: Array<[unknown, number]> = [
      [{ order: run.args.order, amount: 600, blob: 'x'.repeat(70_000) }, 413],
      [[1, 2, 3], 400],
      ['{"amount":1}', 400],
      [null, 400],
    ];
    let through = 0;
    for (const [edited, status] of attempts) {
      const res = await approve(ann.key, run.id, edited);
      if (res.status !== status) through += 1;
    }
    const reject = await api(as(ann.key), 'POST', `/v1/decisions/${run.id}/approvals`, { verdict: 'reject', edited_args: { order: run.args.order, amount: 600 } });
    if (reject.status !== 409) through += 1;
    if (!(await stillPending(run.id))) through += 1;
    console.log(`attack oversized-edit: ${attempts.length + 1} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 120_000);

  it("another tenant's approver, and the requester itself, cannot approve an edit", async () => {
    const run = await pending(650);
    const t = await api(as(stack.bootstrapKey), 'POST', '/v1/tenants', { id: `edit-b-${RUN}`, name: 'B' });
    expect(t.status).toBe(201);
    const b = await api(as(t.body.admin_api_key), 'POST', '/v1/principals', { name: 'b-ann', kind: 'person', roles: ['approver'], groups: ['finance'] });
    const attempts = [
      await approve(b.body.api_key, run.id, { order: run.args.order, amount: 600 }),
      await approve(bot.key, run.id, { order: run.args.order, amount: 600 }),
    ];
    let through = attempts.filter((r) => r.status === 200).length;
    expect(attempts.map((r) => r.status)).toEqual([404, 403]);
    if (!(await stillPending(run.id))) through += 1;
    console.log(`attack other-tenant-edit: ${attempts.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 120_000);

  it('the inbox says where an edit may count, and which edited arguments a round is being approved with: the API refuses anything else', async () => {
    const wipe = await pending(0, 'edit_wipe_tool');
    const refundRun = await pending(650);
    const cy = await addPrincipal(stack, { name: `cy-${RUN}`, roles: ['approver'], groups: ['finance'] });
    const inbox = async (key: string) => (await api(as(key), 'GET', '/v1/approvals?limit=500')).body.items as Array<Record<string, any>>;
    const items = await inbox(ann.key);
    expect(items.find((x) => x['decision_id'] === wipe.id)).toMatchObject({ edits_allowed: false });
    expect(items.find((x) => x['decision_id'] === refundRun.id)).toMatchObject({ edits_allowed: true });
    expect(items.find((x) => x['decision_id'] === refundRun.id)).not.toHaveProperty('edited_args');
    // Every round the inbox says takes no edit refuses one.
    const noEdits = items.filter((x) => x['edits_allowed'] === false);
    let through = 0;
    for (const x of noEdits) {
      const args = (x['args'] ?? {}) as Record<string, unknown>;
      if ((await approve(ann.key, x['decision_id'] as string, { ...args, edited: true })).status !== 409) through += 1;
    }
    if (!(await stillPending(wipe.id))) through += 1;

    // A round of two being approved with an edit: the next approver's inbox shows those arguments and who edited
    // them; approving as asked, or another edit, is refused; approving the arguments shown counts.
    const order = `pair-${RUN}`;
    const asked = await api(as(bot.key), 'POST', '/v1/decisions', { agent: { id: 'edit-bot' }, action: { tool: 'edit_pair_tool', operation: 'Refund', args: { order, amount: 900 } }, idempotency_key: `${order}/${RUN}` });
    expect(asked.body.decision).toBe('REQUIRE_APPROVAL');
    const pairId = asked.body.decision_id as string;
    await eventually(async () => ((await types(pairId)).includes('ApprovalRequested') ? true : undefined), 60_000, 'the round');
    const edited = { order, amount: 700 };
    expect((await approve(ann.key, pairId, edited)).body).toMatchObject({ counted: true, round_status: 'open' });
    const shown = (await inbox(cy.key)).find((x) => x['decision_id'] === pairId)!;
    expect(shown).toMatchObject({ edits_allowed: true, edited_args: edited, edited_args_digest: sha256Digest(edited), edited_by: ann.id, approvals: 1 });
    const refused = [await approve(cy.key, pairId), await approve(cy.key, pairId, { order, amount: 650 })];
    through += refused.filter((r) => r.status !== 409).length;
    if ((await api(as(bot.key), 'GET', `/v1/decisions/${pairId}`)).body.status !== 'pending_approval') through += 1;
    expect((await approve(cy.key, pairId, shown['edited_args'])).body).toMatchObject({ counted: true, decision_status: 'final' });
    expect((await api(as(bot.key), 'GET', `/v1/decisions/${pairId}`)).body).toMatchObject({ status: 'final', edited_args: edited });
    console.log(`attack inbox-edit-fields: ${noEdits.length + refused.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 180_000);

  it('looser edits through the API never count', async () => {
    const run = await pending(650);
    const looser = [{ order: run.args.order, amount: 100 }, { order: run.args.order, amount: 5001 }, { order: run.args.order, amount: 2500 }, { order: run.args.order }, { order: run.args.order, amount: 'lots' }];
    let through = 0;
    for (const edited of looser) if ((await approve(ann.key, run.id, edited)).status !== 409) through += 1;
    if (!(await stillPending(run.id))) through += 1;
    console.log(`attack looser-edit: ${looser.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 120_000);
});
