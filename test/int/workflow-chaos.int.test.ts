import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { saveHistory } from '../histories/write-history.ts';
import { BUNDLER_OPTIONS } from '../../services/worker/workflows-path.ts';
import { activateYaml, addPrincipal, api, eventually, startTestStack, type AppProcess, type TestStack } from './harness.ts';

// The worker dies after a random share of the appends its runs commit, and is started again each time, while
// agents ask, approvers answer (two at once where two are needed) and agents report outcomes. Whatever attempt
// of which task a crash cuts short, every run must end as its answers say, with each answer once, a clean
// chain, a receipt that verifies, and a history that replays.
const WORKFLOWS = path.resolve(import.meta.dirname, '..', '..', 'workflows', 'index.ts');
const OUT = path.resolve(import.meta.dirname, '..', '..', '.data', 'test-output', 'chaos');
const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: chaos-test, name: Chaos }
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
  - name: reads
    match: { tool: read_tool }
    decision: ALLOW
`;
const RUNS = 9; // a third of each tool

type Who = { id: string; key: string };
type Ev = { type: string; event_id: string; stream_version: number; data: Record<string, unknown> };

describe('runs under a worker that keeps dying after its appends commit', () => {
  let stack: TestStack;
  let agent: Who, olga: Who, omar: Who;

  beforeAll(async () => {
    stack = await startTestStack();
    await activateYaml(stack, POLICY);
    agent = await addPrincipal(stack, { name: 'bot', kind: 'agent', roles: ['agent'] });
    olga = await addPrincipal(stack, { name: 'Olga', roles: ['approver'], groups: ['ops'] });
    omar = await addPrincipal(stack, { name: 'Omar', roles: ['approver'], groups: ['ops'] });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('every run ends as its answers say, each answer once, its chain clean, its receipt valid, its history replayable', async () => {
    await stack.worker.stop('SIGTERM');
    let crashes = 0;
    let chaos = true;
    // The supervisor: a worker that died is started again at once, until the chaos ends.
    let current: AppProcess = await stack.startWorker({ COUNTERSIGN_CRASH_AT: 'after-some-append-commits' });
    const supervise = (async () => {
      while (chaos) {
        const p = current;
        await new Promise<void>((resolve) => { if (p.child.exitCode !== null || p.child.signalCode !== null) resolve(); else p.child.once('exit', () => resolve()); });
        if (!chaos) return;
        crashes += 1;
        current = await stack.startWorker({ COUNTERSIGN_CRASH_AT: 'after-some-append-commits' });
      }
    })();

    const tools = ['change_tool', 'payout_tool', 'read_tool'];
    const ids: Array<{ id: string; tool: string }> = [];
    const answered: Array<{ status: number; body: Record<string, unknown> }> = [];
    // An agent or an approver whose call failed with a server error tries again, as a client would (a run whose
    // first events a crash held back answers 503 until a worker records them).
    const call = async (who: Who, method: string, route: string, body: unknown, retryable = (s: number) => s >= 500 || s === 0) => {
      for (let attempt = 0; ; attempt++) {
        const res = await api({ url: stack.url, key: who.key }, method, route, body).catch(() => ({ status: 0, body: {}, headers: new Headers() }));
        if (!retryable(res.status) || attempt === 20) return res;
        await new Promise((r) => setTimeout(r, 1_000));
      }
    };
    try {
      await Promise.all(Array.from({ length: RUNS }, async (_, i) => {
        const tool = tools[i % tools.length]!;
        const res = await call(agent, 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool, args: { n: i } } });
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        const id = res.body.decision_id as string;
        ids.push({ id, tool });
        if (tool !== 'read_tool') {
          await eventually(async () => ((await api(stack, 'GET', `/v1/decisions/${id}/events`)).body.items?.some((e: Ev) => e.type === 'ApprovalRequested') ? true : undefined), 120_000, 'the round');
          const approvers = tool === 'payout_tool' ? [olga, omar] : [olga];
          const answers = await Promise.all(approvers.map((a) => call(a, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' })));
          answered.push(...answers);
          const final = await api({ url: stack.url, key: agent.key }, 'GET', `/v1/decisions/${id}?wait=60`);
          const events = (await api(stack, 'GET', `/v1/decisions/${id}/events`)).body.items?.map((e: Ev) => [e.type, e.data['approver_id'] ?? null]);
          expect(final.body, JSON.stringify({ answers: answers.map((a) => a.body), events })).toMatchObject({ decision: 'ALLOW', status: 'final' });
        }
        const final = await api({ url: stack.url, key: agent.key }, 'GET', `/v1/decisions/${id}?wait=60`);
        expect(final.body, JSON.stringify(final.body)).toMatchObject({ decision: 'ALLOW', status: 'final' });
        const outcome = await call(agent, 'POST', `/v1/decisions/${id}/outcome`, { status: 'succeeded', output: { n: i } });
        // A report whose first try was cut short may find itself recorded when tried again.
        if (outcome.status !== 200) expect(outcome.body, JSON.stringify(outcome.body)).toMatchObject({ status: 409, detail: expect.stringMatching(/already reported/) });
      }));
    } finally {
      chaos = false;
      await current.stop('SIGKILL').catch(() => undefined);
      await supervise;
      stack.worker = await stack.startWorker();
    }
    console.log(`chaos: ${RUNS} runs, ${crashes} worker crashes after a commit, ${answered.length} answers`);
    // An answer whose first try was cut short may find it counted when tried again: never refused otherwise.
    for (const a of answered) {
      if (a.status !== 200) expect(a.body, JSON.stringify(a.body)).toMatchObject({ code: 'answer_refused', detail: expect.stringMatching(/already (answered|approved)/) });
    }

    let bad = 0;
    for (const { id, tool } of ids) {
      await eventually(async () => {
        const shown = await api(stack, 'GET', `/v1/decisions/${id}/events`);
        const items = (shown.body.items ?? []) as Ev[];
        return items.some((e) => e.type === 'OutcomeReported') && items.at(-1)?.type === 'ReceiptIssued' ? true : undefined;
      }, 120_000, `run ${id} to settle`);
      const shown = await api(stack, 'GET', `/v1/decisions/${id}/events`);
      const items = shown.body.items as Ev[];
      const approvals = items.filter((e) => e.type === 'ApprovalGranted').map((e) => e.data['approver_id']);
      const expected = tool === 'payout_tool' ? [olga.id, omar.id] : tool === 'change_tool' ? [olga.id] : [];
      const sound = shown.body.chain_linked === true && shown.body.receipt?.verification?.ok === true
        && items.map((e) => e.stream_version).every((v, i) => v === i + 1)
        && JSON.stringify([...approvals].sort()) === JSON.stringify([...expected].sort())
        && items.filter((e) => e.type === 'DecisionFinalized').length === 1
        && items.filter((e) => e.type === 'OutcomeReported').length === 1
        && items.filter((e) => e.type === 'ApprovalRequested').length === (tool === 'read_tool' ? 0 : 1);
      if (!sound) {
        bad += 1;
        console.log(`run ${id} (${tool}) is not sound: ${JSON.stringify(items.map((e) => e.type))}`);
      }
    }
    console.log(`attack worker-killed-after-commit: ${ids.length} runs, ${bad} got through`);
    expect(bad).toBe(0);

    const connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
    try {
      const client = new Client({ connection });
      const histories = await Promise.all(ids.map(async ({ id }) => {
        const handle = client.workflow.getHandle(workflowIdFor('default', id));
        return { workflowId: handle.workflowId, history: await handle.fetchHistory() };
      }));
      const failures: string[] = [];
      for await (const r of Worker.runReplayHistories({ workflowsPath: WORKFLOWS, bundlerOptions: BUNDLER_OPTIONS }, histories)) {
        if (!r.error) continue;
        failures.push(`${r.workflowId}: ${r.error.message.slice(0, 1500)}`);
        // Kept for diagnosis: the history that did not replay, as `temporal workflow show --output json` writes it.
        mkdirSync(OUT, { recursive: true });
        saveHistory(stack.env['TEMPORAL_ADDRESS']!, r.workflowId, path.join(OUT, `${r.workflowId.replaceAll('/', '_')}.json`));
      }
      expect(failures).toEqual([]);
    } finally {
      await connection.close();
    }
  }, 600_000);
});
