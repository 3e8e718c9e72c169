// Records the decision workflow's approval branches for the replay tier:
//   eval "$(services/stack/stack.sh env)"; npx tsx test/histories/record-approval-histories.ts
// One run down each of: two parallel requirements of one round (two groups, each must approve); a three-level
// escalation ladder answered at its last level; an answer by a delegate; an approval with edited arguments;
// a judgment rule decided by the tenant's evaluator (a local chat-completions server); and a judgment rule left
// to people. Writes test/fixtures/histories/<branch>.json, replacing the recorded ones (record-histories.ts and
// record-channel-histories.ts record the other branches).
import { createServer } from 'node:http';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { writeHistory } from './write-history.ts';
import { activateYaml, addPrincipal, api, eventually, startTestStack } from '../int/harness.ts';

const OUT = path.join(import.meta.dirname, '..', 'fixtures', 'histories');
const JUDGMENT = 'Reject any approval that mentions a vendor not in the lookup result.';
const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: approval-branches, name: One rule per approval branch }
scope: { level: tenant }
rules:
  - name: finance
    match: { tool: vendor_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [finance], timeout: 1h }
  - name: security
    match: { tool: vendor_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [security], timeout: 1h }
  - name: ladder
    match: { tool: ladder_tool }
    decision: REQUIRE_APPROVAL
    approval:
      levels:
        - { approvers: [ops], timeout: 2s }
        - { approvers: [leads], timeout: 2s }
        - { approvers: [cto], timeout: 1h }
      on_timeout: DENY
  - name: delegated
    match: { tool: payout_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [finance], timeout: 1h }
  - name: small-refund
    match: { tool: refund_tool }
    condition: action.args.amount <= 500
    decision: ALLOW
  - name: big-refund
    match: { tool: refund_tool }
    condition: action.args.amount > 500
    decision: REQUIRE_APPROVAL
    approval: { approvers: [finance], timeout: 1h }
  - type: nl
    text: ${JSON.stringify(JUDGMENT)}
    applies_to: { tool: invoice_tool }
    approval: { approvers: [finance], timeout: 1h }
`;

// A chat-completions endpoint that passes every judgment asked of it.
const evaluator = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      id: 'chatcmpl-record', object: 'chat.completion', created: 1, model: 'judge-record',
      choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: JSON.stringify({ verdict: 'pass', reason: 'the vendor is in the lookup result' }), refusal: null } }],
    }));
  });
});
await new Promise<void>((r) => evaluator.listen(0, '127.0.0.1', () => r()));
const evaluatorHost = `127.0.0.1:${(evaluator.address() as { port: number }).port}`;

const stack = await startTestStack({ COUNTERSIGN_OUTCOME_WINDOW: '2s', COUNTERSIGN_OVERRIDE_WINDOW: '2s', COUNTERSIGN_EVALUATOR_ALLOW_HOSTS: evaluatorHost });
const connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
try {
  await activateYaml(stack, POLICY);
  const agent = await addPrincipal(stack, { name: 'bot', kind: 'agent', roles: ['agent'] });
  const fin = await addPrincipal(stack, { name: 'f1', roles: ['approver'], groups: ['finance'] });
  const fin2 = await addPrincipal(stack, { name: 'f2', roles: ['approver'], groups: ['finance'] });
  const sec = await addPrincipal(stack, { name: 's1', roles: ['approver'], groups: ['security'] });
  await addPrincipal(stack, { name: 'o1', roles: ['approver'], groups: ['ops'] });
  await addPrincipal(stack, { name: 'l1', roles: ['approver'], groups: ['leads'] });
  const cto = await addPrincipal(stack, { name: 'c1', roles: ['approver'], groups: ['cto'] });
  const as = (who: { key: string }) => ({ url: stack.url, key: who.key });
  const must = (what: string, res: { status: number; body: any }, status = 200) => {
    if (res.status !== status) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const ask = async (tool: string, args: Record<string, unknown> = { x: 1 }) =>
    must(`ask ${tool}`, await api(as(agent), 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool, args } })).decision_id as string;
  const answer = async (who: { key: string }, id: string, body: Record<string, unknown> = { verdict: 'approve' }) => must(`answer ${id}`, await api(as(who), 'POST', `/v1/decisions/${id}/approvals`, body));
  const hasEvent = (id: string, type: string) => eventually(async () => ((await stack.db.query('SELECT 1 FROM events WHERE stream_id = $1 AND type = $2', [`run/${id}`, type])).rowCount ? true : undefined), 60_000, `${type} of ${id}`);

  const branches: Record<string, string> = {};

  branches['requirements'] = await ask('vendor_tool');
  await hasEvent(branches['requirements'], 'ApprovalRequested');
  await answer(fin, branches['requirements']);
  await answer(sec, branches['requirements']);

  branches['ladder'] = await ask('ladder_tool');
  await hasEvent(branches['ladder'], 'ApprovalRequested');
  await eventually(async () => ((await stack.db.query("SELECT 1 FROM events WHERE stream_id = $1 AND type = 'ApprovalEscalated'", [`run/${branches['ladder']}`])).rowCount === 2 ? true : undefined), 60_000, 'two escalations');
  await answer(cto, branches['ladder']);

  // Away: f1 hands finance to f2, who answers for them.
  must('delegation', await api(as(fin), 'POST', '/v1/delegations', { to: fin2.id, group: 'finance', ends_at: new Date(Date.now() + 3_600_000).toISOString() }), 201);
  branches['delegation'] = await ask('payout_tool');
  await hasEvent(branches['delegation'], 'ApprovalRequested');
  await answer(fin2, branches['delegation']);

  branches['approve-with-edit'] = await ask('refund_tool', { order: 'o-1', amount: 900 });
  await hasEvent(branches['approve-with-edit'], 'ApprovalRequested');
  await answer(fin2, branches['approve-with-edit'], { verdict: 'approve', edited_args: { order: 'o-1', amount: 600 } });

  // Left to people (no evaluator yet): the checklist is the round's.
  branches['judgment-people'] = await ask('invoice_tool', { vendor: 'Acme' });
  await hasEvent(branches['judgment-people'], 'ApprovalRequested');
  await answer(fin2, branches['judgment-people']);

  must('evaluator', await api({ url: stack.url, key: stack.key }, 'PUT', '/v1/tenants/default/evaluator', { url: `http://${evaluatorHost}/v1`, model: 'judge-record', api_key: 'sk-record', timeout_ms: 3000 }));
  branches['judgment-evaluated'] = await ask('invoice_tool', { vendor: 'Acme' });
  await hasEvent(branches['judgment-evaluated'], 'JudgmentEvaluated');

  const client = new Client({ connection });
  for (const [name, id] of Object.entries(branches)) {
    const { events } = await writeHistory(client, stack.env['TEMPORAL_ADDRESS']!, workflowIdFor('default', id), path.join(OUT, `${name}.json`));
    process.stdout.write(`recorded ${name} (${events} events)\n`);
  }
} finally {
  await connection.close();
  await stack.stop();
  evaluator.close();
}
