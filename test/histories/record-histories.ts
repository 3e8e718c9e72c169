// The explicit update command for the replay tier's golden histories (style items 8, 9 and 16):
//   eval "$(services/stack/stack.sh env)"; npx tsx test/histories/record-histories.ts
// Runs one decision down every branch of the workflow against the real stack, then writes each completed
// history to test/fixtures/histories/<branch>.json, replacing the recorded one. Until the first release there
// is one code path and one recorded generation: a change to a workflow's commands re-records them all (with
// test/histories/record-channel-histories.ts). After a release, see README "Versioning workflow changes".
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { answerUpdate } from '../../workflows/decision-workflow.ts';
import { writeHistory } from './write-history.ts';
import { activateYaml, addPrincipal, api, attestedAnswer, eventually, startTestStack } from '../int/harness.ts';

const OUT = path.join(import.meta.dirname, '..', 'fixtures', 'histories');
mkdirSync(OUT, { recursive: true });
const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: branches, name: One rule per branch }
scope: { level: tenant }
tools: { denied: [shell_exec] }
rules:
  - { name: allow, match: { tool: read_tool }, decision: ALLOW }
  - { name: constraints, match: { tool: bounded_tool }, decision: ALLOW_WITH_CONSTRAINTS, constraints: { max_runtime_sec: 60 } }
  - name: approve
    match: { tool: change_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [ops], quorum: 1, timeout: 1h }
  - name: quorum
    match: { tool: drop_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [ops], quorum: 2, timeout: 1h }
  - name: escalate
    match: { tool: deploy_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [ops], quorum: 1, escalate_after: 2s, timeout: 1h, escalate_to: [leads], on_timeout: DENY }
  - name: expire
    match: { tool: timer_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [ops], quorum: 1, timeout: 2s, on_timeout: DENY }
`;

const stack = await startTestStack({ COUNTERSIGN_OVERRIDE_WINDOW: '20s', COUNTERSIGN_OUTCOME_WINDOW: '3s', COUNTERSIGN_OVERRIDE_TIMEOUT: '2s' });
const connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
try {
  await activateYaml(stack, POLICY);
  const agent = await addPrincipal(stack, { name: 'bot', kind: 'agent', roles: ['agent'] });
  const ops1 = await addPrincipal(stack, { name: 'o1', roles: ['approver'], groups: ['ops'] });
  const ops2 = await addPrincipal(stack, { name: 'o2', roles: ['approver'], groups: ['ops'] });
  const lead = await addPrincipal(stack, { name: 'l1', roles: ['approver'], groups: ['leads'] });
  const admin = await addPrincipal(stack, { name: 'a1', roles: ['approver', 'admin'], groups: ['admins'] });
  const as = (who: { key: string }) => ({ url: stack.url, key: who.key });
  const ask = async (tool: string) => (await api(as(agent), 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool, args: { x: 1 } } })).body.decision_id as string;
  const answer = async (who: { key: string }, id: string, verdict: string) => {
    const res = await api(as(who), 'POST', `/v1/decisions/${id}/approvals`, { verdict });
    if (res.status !== 200) throw new Error(`answer to ${id}: ${res.status} ${JSON.stringify(res.body)}`);
  };
  const hasEvent = (id: string, type: string) => eventually(async () => ((await stack.db.query('SELECT 1 FROM events WHERE stream_id = $1 AND type = $2', [`run/${id}`, type])).rowCount ? true : undefined), 60_000, `${type} of ${id}`);

  const branches: Record<string, string> = {};
  branches['allow'] = await ask('read_tool');
  branches['deny'] = await ask('shell_exec');
  branches['constraints'] = await ask('bounded_tool');
  branches['approve'] = await ask('change_tool');
  branches['reject'] = await ask('change_tool');
  branches['quorum'] = await ask('drop_tool');
  branches['escalate'] = await ask('deploy_tool');
  branches['expire'] = await ask('timer_tool');
  branches['override-granted'] = await ask('shell_exec');
  branches['override-denied'] = await ask('shell_exec');

  for (const id of Object.values(branches)) await hasEvent(id, 'PolicyEvaluated');
  await answer(ops1, branches['approve'], 'approve');
  await answer(ops1, branches['reject'], 'reject');
  await answer(ops1, branches['quorum'], 'approve');
  await answer(ops2, branches['quorum'], 'approve');
  await hasEvent(branches['escalate'], 'ApprovalEscalated');
  await answer(lead, branches['escalate'], 'approve');
  for (const b of ['override-granted', 'override-denied']) {
    await hasEvent(branches[b]!, 'ReceiptIssued');
    await api(as(agent), 'POST', `/v1/decisions/${branches[b]}/override`, { justification: `recording ${b}` });
  }
  await answer(admin, branches['override-granted'], 'approve');
  // Asked last: the outcome window is short, so the report must follow the decision at once.
  branches['outcome'] = await ask('read_tool');
  await hasEvent(branches['outcome'], 'ReceiptIssued');
  const reported = await api(as(agent), 'POST', `/v1/decisions/${branches['outcome']}/outcome`, { status: 'succeeded', output: { rows: 3 } });
  if (reported.status !== 200) throw new Error(`outcome: ${reported.status} ${JSON.stringify(reported.body)}`);

  // An answer delivered in the run's first task (no worker ran when it was sent): attested as the API would,
  // sent to the run itself, counted once a worker takes the task; the round closes before any request goes out.
  await stack.worker.stop('SIGTERM');
  const early = await api(as(agent), 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool: 'change_tool', args: { x: 1 } } });
  branches['early-answer'] = early.body.decision_id as string;
  const earlyAnswer = new Client({ connection }).workflow.getHandle(workflowIdFor('default', branches['early-answer'])).executeUpdate(answerUpdate, {
    args: [attestedAnswer(stack, { decisionId: branches['early-answer'], approverId: ops1.id, roles: ['approver'], groups: ['ops'], args: { x: 1 }, snapshotHash: early.body.snapshot_hash as string })],
  });
  await new Promise((r) => setTimeout(r, 1_000));
  stack.worker = await stack.startWorker();
  const counted = await earlyAnswer;
  if (!counted.counted) throw new Error(`the early answer was not counted: ${JSON.stringify(counted)}`);

  // Four-eyes policy activation (policyActivationWorkflow): approved, rejected, expired.
  const doc = (id: string) => ({
    apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id, name: id }, scope: { level: 'tenant' },
    rules: [{ name: 'r', match: { tool: 't' }, decision: 'DENY' }],
  });
  // Reviewed branches get time for the second admin under load; the expired one a deadline that passes.
  const tenantWith = async (suffix: string, timeout: string) => {
    const tenant = `hist-${suffix}-${Date.now().toString(36)}`;
    const made = await api({ url: stack.url, key: stack.bootstrapKey }, 'POST', '/v1/tenants', { id: tenant, name: tenant, settings: { policy_four_eyes: true, policy_activation_timeout: timeout } });
    if (made.status !== 201) throw new Error(`tenant: ${made.status} ${JSON.stringify(made.body)}`);
    const admin = { url: stack.url, key: made.body.admin_api_key as string };
    const second = await api(admin, 'POST', '/v1/principals', { name: 'second admin', kind: 'person', roles: ['admin'] });
    return { tenant, admin, second: { url: stack.url, key: second.body.api_key as string } };
  };
  const reviewed = await tenantWith('reviewed', '10m');
  const expiring = await tenantWith('expiring', '2s');
  const reviews: Record<string, string> = {};
  for (const b of ['policy-activation-approved', 'policy-activation-rejected', 'policy-activation-expired']) {
    const t = b === 'policy-activation-expired' ? expiring : reviewed;
    const pid = `${b}-${t.tenant}`;
    const draft = await api(t.admin, 'POST', '/v1/policies', doc(pid));
    if (draft.status !== 201) throw new Error(`draft: ${draft.status} ${JSON.stringify(draft.body)}`);
    const asked = await api(t.admin, 'POST', `/v1/policies/${pid}/activate`);
    if (asked.status !== 202) throw new Error(`activate: ${asked.status} ${JSON.stringify(asked.body)}`);
    reviews[b] = asked.body.review_id as string;
    if (b !== 'policy-activation-expired') {
      const verdict = b === 'policy-activation-approved' ? 'approve' : 'reject';
      const res = await api(t.second, 'POST', `/v1/policies/${pid}/activation/approvals`, { verdict });
      if (res.status !== 200) throw new Error(`${verdict}: ${res.status} ${JSON.stringify(res.body)}`);
    }
  }

  const client = new Client({ connection });
  const workflowIds = [
    ...Object.entries(branches).map(([name, id]) => [name, workflowIdFor('default', id)] as const),
    ...Object.entries(reviews),
  ];
  for (const [name, workflowId] of workflowIds) {
    const { events } = await writeHistory(client, stack.env['TEMPORAL_ADDRESS']!, workflowId, path.join(OUT, `${name}.json`));
    process.stdout.write(`recorded ${name} (${events} events)\n`);
  }
} finally {
  await connection.close();
  await stack.stop();
}
