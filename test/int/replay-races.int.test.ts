import { Client, Connection } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { BUNDLER_OPTIONS } from '../../services/worker/workflows-path.ts';
import { activateYaml, addPrincipal, api, eventually, startTestStack, type TestStack } from './harness.ts';

// A run evicted from a worker's cache is rebuilt by replaying its history; a run whose code branched on which of
// two overlapping things finished first (an answer's authorization beside an escalation notice's append; two
// answers at once) can start different commands on replay and fail with a nondeterminism error, leaving the run
// stuck. These runs are made to race on purpose, and every history they leave is replayed.

const WORKFLOWS = path.resolve(import.meta.dirname, '..', '..', 'workflows', 'index.ts');
const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: replay-races }
scope: { level: tenant }
rules:
  - name: ladder
    match: { tool: race_ladder_tool }
    decision: REQUIRE_APPROVAL
    approval:
      levels:
        - { approvers: [ops], timeout: 1s }
        - { approvers: [leads], timeout: 1h }
  - name: pair
    match: { tool: race_pair_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [ops], quorum: 2, timeout: 1h }
`;

let stack: TestStack;
let connection: Connection;

beforeAll(async () => {
  stack = await startTestStack({ COUNTERSIGN_OUTCOME_WINDOW: '1s', COUNTERSIGN_OVERRIDE_WINDOW: '1s' });
  await activateYaml(stack, POLICY);
  connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
}, 180_000);
afterAll(async () => {
  await connection?.close();
  await stack?.stop();
});

describe('runs whose messages race their own activities replay as they ran', () => {
  it('answers sent while an escalation notice is under way, and two answers at once: every history replays', async () => {
    const bot = await addPrincipal(stack, { name: 'race-bot', kind: 'agent', roles: ['agent'] });
    const o1 = await addPrincipal(stack, { name: 'race-o1', roles: ['approver'], groups: ['ops'] });
    const o2 = await addPrincipal(stack, { name: 'race-o2', roles: ['approver'], groups: ['ops'] });
    const lead = await addPrincipal(stack, { name: 'race-l1', roles: ['approver'], groups: ['leads'] });
    const as = (who: { key: string }) => ({ url: stack.url, key: who.key });
    const ask = async (tool: string) => {
      const res = await api(as(bot), 'POST', '/v1/decisions', { agent: { id: 'race-bot' }, action: { tool, args: { n: Math.random() } } });
      expect(res.body.decision, JSON.stringify(res.body)).toBe('REQUIRE_APPROVAL');
      return res.body.decision_id as string;
    };
    const has = (id: string, type: string) =>
      eventually(async () => ((await stack.db.query('SELECT 1 FROM events WHERE stream_id = $1 AND type = $2', [`run/${id}`, type])).rowCount ? true : undefined), 30_000, `${type} of ${id}`);
    const approve = (who: { key: string }, id: string) => api(as(who), 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });

    const ids: string[] = [];
    const runs = 6;
    await Promise.all(Array.from({ length: runs }, async () => {
      // The escalation is in the log before its notice goes out: answering the moment it lands races the notice.
      const id = await ask('race_ladder_tool');
      await has(id, 'ApprovalEscalated');
      expect((await approve(lead, id)).status).toBe(200);
      ids.push(id);
    }));
    await Promise.all(Array.from({ length: runs }, async () => {
      const id = await ask('race_pair_tool');
      await has(id, 'ApprovalRequested');
      const answers = await Promise.all([approve(o1, id), approve(o2, id)]);
      expect(answers.map((a) => a.status)).toEqual([200, 200]);
      ids.push(id);
    }));

    const client = new Client({ connection });
    const histories = await Promise.all(ids.map(async (id) => {
      const handle = client.workflow.getHandle(workflowIdFor('default', id));
      await handle.result();
      return { workflowId: handle.workflowId, history: await handle.fetchHistory() };
    }));
    const failures: string[] = [];
    for await (const r of Worker.runReplayHistories({ workflowsPath: WORKFLOWS, bundlerOptions: BUNDLER_OPTIONS }, histories)) {
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message.slice(0, 300)}`);
    }
    console.log(`replayed ${histories.length} raced runs, ${failures.length} failed`);
    expect(failures).toEqual([]);
  }, 240_000);
});
