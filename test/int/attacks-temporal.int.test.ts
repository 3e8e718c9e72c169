import { randomBytes } from 'node:crypto';
import { Client, Connection, WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest, loadAttestationSecret, newNonce } from '../../services/decisions/attestation.ts';
import { updateIdOf } from '../../services/temporal/send-update.ts';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { decisionIdFor } from '../../services/decisions/decision-id.ts';
import { sha256Digest } from '../../services/receipts/canonical.ts';
import { signRunStart } from '../../services/decisions/start-attestation.ts';
import { loadOrCreateKeyring } from '../../services/receipts/keyring.ts';
import { policyActivationWorkflow } from '../../workflows/policy-activation-workflow.ts';
import { answerUpdate, decisionWorkflow, MAX_REFUSED_PER_RUN, type AnswerInput, type DecisionWorkflowInput } from '../../workflows/decision-workflow.ts';
import { activateYaml, addPrincipal, api, attestedAnswer, freePort, startTestStack, type TestStack } from './harness.ts';

// Temporal is not a way in: someone who can reach Temporal's frontend (but not the API's keys) starts decision
// workflows with inputs of their own making, replays an attested answer onto another run, and floods one run
// with answers that cannot count. Each attack prints how many attempts it made and how many got through.

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: temporal-attacks, name: Targets of the Temporal attacks }
scope: { level: tenant }
tools:
  denied: [shell_exec]
rules:
  - name: change-needs-ops
    match: { tool: change_tool }
    decision: REQUIRE_APPROVAL
    reason: changes need ops
    approval: { approvers: [ops], quorum: 1, timeout: 1h }
  - name: reads
    match: { tool: read_tool }
    decision: ALLOW
    reason: reads are fine
`;

type Who = { id: string; key: string };
/** Every message down an error's cause chain. */
const causes = (err: unknown): string => (err instanceof Error ? `${err.message} / ${causes(err.cause)}` : '');
const FLOOD = 10_000;

describe('attacks through Temporal', () => {
  let stack: TestStack;
  let connection: Connection;
  let client: Client;
  let metricsPort: number;
  let bot: Who, ops: Who, outsider: Who;

  beforeAll(async () => {
    metricsPort = await freePort();
    stack = await startTestStack({ COUNTERSIGN_WORKER_METRICS_PORT: String(metricsPort), COUNTERSIGN_RATE_LIMIT: '1000000' });
    await activateYaml(stack, POLICY);
    bot = await addPrincipal(stack, { name: 'pay-bot', kind: 'agent', roles: ['agent'] });
    ops = await addPrincipal(stack, { name: 'ops-1', roles: ['approver'], groups: ['ops'] });
    outsider = await addPrincipal(stack, { name: 'finance-1', roles: ['approver'], groups: ['finance'] });
    connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
    client = new Client({ connection });
  }, 180_000);

  afterAll(async () => {
    await connection?.close();
    await stack?.stop();
  });

  const ask = (body: object) => api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', { agent: { id: 'pay-bot' }, ...body });
  const newDecisionId = () => `dec_${randomBytes(16).toString('hex')}`;
  const rows = async (decisionId: string) => ({
    events: Number((await stack.db.query('SELECT count(*) FROM events WHERE stream_id = $1', [`run/${decisionId}`])).rows[0].count),
    receipts: Number((await stack.db.query(`SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'ReceiptIssued'`, [`run/${decisionId}`])).rows[0].count),
    counters: Number((await stack.db.query('SELECT count(*) FROM counter_entries WHERE decision_id = $1', [decisionId])).rows[0].count),
  });
  const refusedStarts = async () => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return text.split('\n').filter((l) => l.startsWith('countersign_worker_refused_starts_total')).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  };
  /** A pending run once it waits for answers (its request is out, its history still): its history length. */
  const settled = async (decisionId: string): Promise<number> => {
    const handle = client.workflow.getHandle(workflowIdFor('default', decisionId));
    await expect.poll(async () => Number((await stack.db.query(`SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'NotificationSent'`, [`run/${decisionId}`])).rows[0].count), { timeout: 30_000 }).toBeGreaterThan(0);
    let last = -1;
    for (;;) {
      const n = (await handle.fetchHistory()).events!.length;
      if (n === last) return n;
      last = n;
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  /** The input the API started a run with, as Temporal recorded it. */
  const inputOf = async (decisionId: string): Promise<DecisionWorkflowInput> => {
    const history = await client.workflow.getHandle(workflowIdFor('default', decisionId)).fetchHistory();
    return defaultPayloadConverter.fromPayload(history.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!);
  };
  /** Signs an input as the API does (the test holds the deployment's key; an attacker does not). */
  const signAsApi = async (input: DecisionWorkflowInput): Promise<DecisionWorkflowInput> => {
    const ring = await loadOrCreateKeyring(stack.env['COUNTERSIGN_KEYS_DIR']!);
    const attestation = signRunStart(
      ring,
      { decision_id: input.decisionId, tenant_id: input.tenantId, request: input.request, request_digest: input.requestDigest, args_digest: input.argsDigest, idempotency_key: input.idempotencyKey, requested_by: input.requestedBy },
      { evaluation: input.evaluation, policies: input.policies, default_decision: input.defaultDecision },
      { workflow_id: workflowIdFor(input.tenantId, input.decisionId), counter_increments: input.counterIncrements ?? [], windows: input.windows, callback_url: input.callbackUrl ?? null },
      new Date(),
    );
    return { ...input, attestation };
  };
  /** Starts a run straight through Temporal; answers whether it wrote anything (events, receipt, counters). */
  const forge = async (input: DecisionWorkflowInput, workflowId = workflowIdFor(input.tenantId, input.decisionId)) => {
    const before = await rows(input.decisionId);
    const handle = await client.workflow.start(decisionWorkflow, { taskQueue: stack.taskQueue, workflowId, args: [input] });
    const outcome = await handle.result().then(() => 'completed', (err: unknown) => err);
    const after = await rows(input.decisionId);
    const wrote = after.events > before.events || after.receipts > before.receipts || after.counters > before.counters;
    return { outcome, wrote, workflowId };
  };

  it('forged starts write nothing, sign nothing, fail, and are counted and logged', async () => {
    // A real run of the API's, final at its start: the template of the forgeries.
    const res = await ask({ action: { tool: 'shell_exec', args: { cmd: 'rm -rf /' } } });
    expect(res.body.decision).toBe('DENY');
    const template = await inputOf(res.body.decision_id);
    expect(template.attestation).toBeDefined();

    // Control: the same input signed as the API signs it, for a fresh decision, is accepted and recorded.
    const control = await signAsApi({ ...template, decisionId: newDecisionId() });
    const accepted = await client.workflow.start(decisionWorkflow, { taskQueue: stack.taskQueue, workflowId: workflowIdFor('default', control.decisionId), args: [control] });
    await expect.poll(async () => (await rows(control.decisionId)).receipts, { timeout: 30_000 }).toBe(1);
    await accepted.terminate('test done');

    const allow = (i: DecisionWorkflowInput): DecisionWorkflowInput => ({ ...i, evaluation: { ...i.evaluation, decision: 'ALLOW', reason: 'forged', matched_rule: null, matched_rules: [] }, policies: [], defaultDecision: 'ALLOW' });
    const variants: Array<[string, () => Promise<{ input: DecisionWorkflowInput; workflowId?: string }>]> = [
      // What the issue reproduced: ALLOW, no policies, default ALLOW, negative counter increments, no attestation.
      ['no-attestation', async () => {
        const { attestation: _a, ...bare } = allow({ ...template, decisionId: newDecisionId() });
        return { input: { ...bare, counterIncrements: [{ key: 'cost/pay-bot', amount: -1_000_000 }] } };
      }],
      ['tampered-decision', async () => ({ input: allow(await signAsApi({ ...template, decisionId: newDecisionId() })) })],
      ['tampered-facts', async () => {
        const signed = await signAsApi({ ...template, decisionId: newDecisionId() });
        return { input: { ...signed, evaluation: { ...signed.evaluation, facts: { counters: { anything: 0 } } } } };
      }],
      ['negative-increments', async () => {
        const signed = await signAsApi({ ...template, decisionId: newDecisionId(), counterIncrements: [{ key: 'cost/pay-bot', amount: 5 }] });
        return { input: { ...signed, counterIncrements: [{ key: 'cost/pay-bot', amount: -1_000_000 }] } };
      }],
      // Signed by the deployment's own key, yet negative: refused by the event schema.
      ['negative-increments-signed', async () => ({ input: await signAsApi({ ...template, decisionId: newDecisionId(), counterIncrements: [{ key: 'cost/pay-bot', amount: -1_000_000 }] }) })],
      ['other-tenant', async () => {
        const signed = await signAsApi({ ...template, decisionId: newDecisionId() });
        return { input: { ...signed, tenantId: 'victim' } };
      }],
      ['replayed-attestation-other-workflow', async () => ({ input: template, workflowId: `decision/default/${newDecisionId()}` })],
      ['replayed-attestation-other-decision', async () => {
        const decisionId = newDecisionId();
        return { input: { ...template, decisionId }, workflowId: workflowIdFor('default', decisionId) };
      }],
      ['garbage-signature', async () => {
        const signed = await signAsApi({ ...template, decisionId: newDecisionId() });
        return { input: { ...signed, attestation: { ...signed.attestation!, signature: { ...signed.attestation!.signature, value: randomBytes(64).toString('base64url') } } } };
      }],
    ];
    const ATTEMPTS = 3;
    for (const [name, make] of variants) {
      let through = 0;
      for (let i = 0; i < ATTEMPTS; i++) {
        const counted = await refusedStarts();
        const { input, workflowId } = await make();
        const r = await forge(input, workflowId);
        const failed = r.outcome instanceof WorkflowFailedError && /run start refused/.test(causes(r.outcome));
        const traced = (await refusedStarts()) === counted + 1 && stack.worker.output().includes(r.workflowId) && /refused a workflow start that the API did not sign/.test(stack.worker.output());
        if (r.wrote || !failed || !traced) through += 1;
        expect({ name, wrote: r.wrote, failed, traced }).toEqual({ name, wrote: false, failed: true, traced: true });
      }
      console.log(`attack forged-start/${name}: ${ATTEMPTS} attempts, ${through} got through`);
      expect(through).toBe(0);
    }
    // The template run itself was not touched by its replays.
    expect((await rows(template.decisionId)).events).toBe(4);
  }, 300_000);

  it('a policy activation review started straight through Temporal opens nothing', async () => {
    const draft = await api(stack, 'POST', '/v1/policies', {
      apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'loose', name: 'Loose' }, scope: { level: 'tenant' },
      rules: [{ name: 'everything', match: { tool: '*' }, decision: 'ALLOW' }],
    });
    expect(draft.status, JSON.stringify(draft.body)).toBeLessThan(300);
    const drafted = (await stack.db.query(`SELECT stream_id, data FROM events WHERE type = 'PolicyDrafted' AND data->>'policy_id' = 'loose'`)).rows[0];
    const streamRows = async () => (await stack.db.query<{ n: string; v: number | null }>('SELECT count(*) AS n, max(stream_version) AS v FROM events WHERE stream_id = $1', [drafted.stream_id])).rows[0]!;
    const ATTEMPTS = 3;
    let through = 0;
    for (let i = 0; i < ATTEMPTS; i++) {
      const before = await streamRows();
      const counted = await refusedStarts();
      const reviewId = `policy-review-forged-${randomBytes(6).toString('hex')}`;
      const handle = await client.workflow.start(policyActivationWorkflow, {
        taskQueue: stack.taskQueue, workflowId: reviewId,
        args: [{ reviewId, tenantId: 'default', policyId: 'loose', documentHash: sha256Digest(drafted.data.document), requestedBy: ops.id, expectedStreamVersion: Number(before.v), timeoutSec: 3600, expectedLoosening: [], ...(i === 1 ? { attestation: { issued_at: new Date().toISOString(), mac: randomBytes(32).toString('base64url') } } : {}) }],
      });
      const outcome = await handle.result().then(() => null, (e: unknown) => e);
      const after = await streamRows();
      const refused = outcome instanceof WorkflowFailedError && /review start refused/.test(causes(outcome)) && (await refusedStarts()) === counted + 1 && stack.worker.output().includes(reviewId);
      if (after.n !== before.n || !refused) through += 1;
      expect({ events: after.n, refused }).toEqual({ events: before.n, refused: true });
    }
    console.log(`attack forged-review-start: ${ATTEMPTS} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 120_000);

  it('a run started under the id of an agent\'s idempotency key never answers the agent', async () => {
    const template = await inputOf((await ask({ action: { tool: 'shell_exec', args: { cmd: 'ls' } } })).body.decision_id);
    const ATTEMPTS = 3;
    let through = 0;
    for (let i = 0; i < ATTEMPTS; i++) {
      // The attacker guesses the key and the request the agent will send, and starts first: ALLOW, unsigned.
      const key = `order-${randomBytes(4).toString('hex')}`;
      const body = { agent: { id: 'pay-bot' }, action: { tool: 'shell_exec', args: { cmd: 'rm -rf /' } }, idempotency_key: key };
      const request = { ...body, context: {}, policy_rules: [] };
      const decisionId = decisionIdFor('default', bot.id, key);
      const { attestation: _a, ...bare } = template;
      const forged: DecisionWorkflowInput = {
        ...bare, decisionId, idempotencyKey: key, request, requestDigest: sha256Digest(request), argsDigest: sha256Digest(request.action.args),
        evaluation: { ...template.evaluation, decision: 'ALLOW', reason: 'forged', matched_rule: null, matched_rules: [] }, policies: [], defaultDecision: 'ALLOW',
      };
      await forge(forged);
      const answered = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', body);
      if (answered.status === 200 || answered.body?.decision === 'ALLOW') through += 1;
      expect(answered.status, JSON.stringify(answered.body)).toBe(409);
      expect(answered.body.detail).toMatch(/did not start/);
      expect((await rows(decisionId)).events).toBe(0);
    }
    console.log(`attack squatted-idempotency-key: ${ATTEMPTS} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 120_000);

  it('an approval attested for one run does not count on another (same round, arguments and snapshot)', async () => {
    const args = { change: 'same' };
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await ask({ action: { tool: 'change_tool', args } })).body.decision_id);
    const snapshot = (await api(stack, 'GET', `/v1/decisions/${ids[0]}`)).body.snapshot_hash as string;
    const [source, ...targets] = ids as [string, ...string[]];
    const message = attestedAnswer(stack, { decisionId: source, approverId: ops.id, roles: ['approver'], groups: ['ops'], args, snapshotHash: snapshot });
    let through = 0;
    for (const target of targets) {
      const handle = client.workflow.getHandle(workflowIdFor('default', target));
      const before = await settled(target);
      const err = await handle.executeUpdate(answerUpdate, { args: [message] }).then(() => null, (e: unknown) => e);
      if (!(err instanceof WorkflowUpdateFailedError)) through += 1;
      expect(String((err as WorkflowUpdateFailedError).cause?.message)).toMatch(/for another decision/);
      expect((await handle.fetchHistory()).events!.length).toBe(before);
      expect((await api(stack, 'GET', `/v1/decisions/${target}`)).body.status).toBe('pending_approval');
    }
    // On its own run it counts once; delivered again (same nonce), it is refused before history.
    const own = client.workflow.getHandle(workflowIdFor('default', source));
    await expect(own.executeUpdate(answerUpdate, { args: [message] })).resolves.toMatchObject({ counted: true });
    const again = await own.executeUpdate(answerUpdate, { args: [message] }).then(() => null, (e: unknown) => e);
    if (!(again instanceof WorkflowUpdateFailedError)) through += 1;
    expect(String((again as WorkflowUpdateFailedError).cause?.message)).toMatch(/nonce was used/);
    // Sent again under the update id the API gives its messages (which lets the API's own retries join their first
    // delivery), twice: refused both times, and nothing reaches the run.
    for (let i = 0; i < 2; i++) {
      const replayed = await own.executeUpdate(answerUpdate, { args: [message], updateId: updateIdOf(message) }).then(() => null, (e: unknown) => e);
      if (!(replayed instanceof WorkflowUpdateFailedError)) through += 1;
    }
    expect((await stack.db.query(`SELECT count(*)::int AS n FROM events WHERE stream_id = $1 AND type = 'ApprovalGranted'`, [`run/${source}`])).rows[0].n).toBe(1);
    console.log(`attack replayed-answer-other-run: ${targets.length + 3} attempts, ${through} got through`);
    expect(through).toBe(0);
  }, 120_000);

  it(`${FLOOD} refused answers to one run leave its history bounded`, async () => {
    const res = await ask({ action: { tool: 'change_tool', args: { change: 'flood' } } });
    const id = res.body.decision_id as string;
    const handle = client.workflow.getHandle(workflowIdFor('default', id));
    const start = await settled(id);
    const round = (await stack.db.query(`SELECT data FROM events WHERE stream_id = $1 AND type = 'ApprovalRequested'`, [`run/${id}`])).rows[0].data;

    // Through the API: an approver outside the round's groups, again and again. Refused before anything is sent.
    let viaApi = 0;
    const pool = async (n: number, width: number, fn: (i: number) => Promise<void>) => {
      let next = 0;
      await Promise.all(Array.from({ length: width }, async () => { while (next < n) await fn(next++); }));
    };
    await pool(FLOOD / 2, 16, async () => {
      const r = await api({ url: stack.url, key: outsider.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
      if (r.status === 200) viaApi += 1;
      else if (r.status !== 409) throw new Error(`unexpected ${r.status}: ${JSON.stringify(r.body)}`);
    });
    const afterApi = (await handle.fetchHistory()).events!.length;
    expect(afterApi).toBe(start);

    // Straight to Temporal: answers that look attested (the outsider's, with a valid MAC, which the handler then
    // refuses for the group; and made-up approvers with made-up MACs, which the worker refuses).
    const secret = loadAttestationSecret(stack.env['COUNTERSIGN_KEYS_DIR']!);
    const valid = (): AnswerInput => attest(secret, {
      kind: 'answer' as const, decision_id: id, nonce: newNonce(), round: 1, verdict: 'approve' as const, channel: 'api' as const,
      approver_id: outsider.id, approver_roles: ['approver'], approver_groups: ['finance'], tenant_id: 'default', args_digest: round.args_digest, snapshot_hash: round.snapshot_hash,
    }, new Date());
    const lookalike = (i: number): AnswerInput => ({ ...valid(), approver_id: `prn_forged_${i}`, attestation: { issued_at: new Date().toISOString(), mac: randomBytes(32).toString('base64url') } });
    let viaTemporal = 0;
    const reasons = new Map<string, number>();
    await pool(FLOOD / 2, 8, async (i) => {
      const r = await handle.executeUpdate(answerUpdate, { args: [i % 2 === 0 ? valid() : lookalike(i)] }).then((x) => x, (e: unknown) => e);
      if (!(r instanceof Error)) { viaTemporal += 1; return; }
      const why = String((r as WorkflowUpdateFailedError).cause?.message ?? r.message).replace(/prn_\w+/g, 'prn').slice(0, 80);
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
    });
    const end = (await handle.fetchHistory()).events!.length;
    console.log(`history of the flooded run: ${start} events before, ${afterApi} after ${FLOOD / 2} answers through the API, ${end} after ${FLOOD / 2} straight to Temporal; refusals: ${JSON.stringify(Object.fromEntries(reasons))}`);
    // Each message accepted and then refused costs a handful of events; at most MAX_REFUSED_PER_RUN are accepted.
    expect(end - start).toBeLessThanOrEqual(MAX_REFUSED_PER_RUN * 8);
    // Nothing was decided by the flood. (The run now refuses further messages that could be refused: someone
    // who can reach Temporal can hold a round until its deadline, never decide it.)
    expect((await api(stack, 'GET', `/v1/decisions/${id}`)).body.status).toBe('pending_approval');
    console.log(`attack refused-answer-flood: ${FLOOD} attempts, ${viaApi + viaTemporal} got through`);
    expect(viaApi + viaTemporal).toBe(0);
  }, 600_000);
});
