import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { answerUpdate } from '../../workflows/decision-workflow.ts';
import { activateYaml, addPrincipal, api, attestedAnswer, eventually, freePort, startProcess, startTestStack, type TestStack } from './harness.ts';

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: reliability-test, name: Reliability }
scope: { level: tenant }
rules:
  - name: change-needs-approval
    match: { tool: change_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [ops], quorum: 1, timeout: 1h }
  - name: short-wait
    match: { tool: timer_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [ops], quorum: 1, timeout: 12s, on_timeout: DENY }
  - name: reads
    match: { tool: read_tool }
    decision: ALLOW
`;

type Who = { id: string; key: string };

async function runEvents(stack: TestStack, id: string) {
  return (await stack.db.query<{ type: string; event_id: string; stream_version: number }>('SELECT type, event_id, stream_version FROM events WHERE stream_id = $1 ORDER BY stream_version', [`run/${id}`])).rows;
}

/** Every run's stream: contiguous versions, each event id once, exactly one DecisionRequested. */
async function expectCleanStream(stack: TestStack, id: string) {
  const events = await runEvents(stack, id);
  expect(events.map((e) => e.stream_version)).toEqual(events.map((_, i) => i + 1));
  expect(new Set(events.map((e) => e.event_id)).size).toBe(events.length);
  expect(events.filter((e) => e.type === 'DecisionRequested')).toHaveLength(1);
  expect(events.filter((e) => e.type === 'PolicyEvaluated')).toHaveLength(1);
  return events;
}

async function workflowCount(address: string, workflowId: string): Promise<number> {
  const connection = await Connection.connect({ address });
  try {
    let n = 0;
    for await (const _ of new Client({ connection }).workflow.list({ query: `WorkflowId = '${workflowId}'` })) n += 1;
    return n;
  } finally {
    await connection.close();
  }
}

/**
 * Waits until no running workflow of this stack has a workflow task or an activity outstanding, so a worker
 * started with a crash point meets only the work of the run its test starts (a notification of an earlier
 * run's round, taken by that worker, would crash it on the wrong append).
 */
async function quiesce(stack: TestStack) {
  const connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
  try {
    const client = new Client({ connection });
    await eventually(async () => {
      for await (const run of client.workflow.list({ query: `TaskQueue = '${stack.taskQueue}' AND ExecutionStatus = 'Running'` })) {
        const { raw } = await client.workflow.getHandle(run.workflowId, run.runId).describe();
        if (raw.pendingWorkflowTask || (raw.pendingActivities?.length ?? 0) > 0) return undefined;
      }
      return true;
    }, 60_000, 'the earlier runs to have no work outstanding');
  } finally {
    await connection.close();
  }
}

describe('decisions survive crashes of the worker, the API and the Temporal server', () => {
  let stack: TestStack;
  let agent: Who, ops: Who;

  beforeAll(async () => {
    stack = await startTestStack();
    await activateYaml(stack, POLICY);
    agent = await addPrincipal(stack, { name: 'bot', kind: 'agent', roles: ['agent'] });
    ops = await addPrincipal(stack, { name: 'Olga', roles: ['approver'], groups: ['ops'] });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('kill -9 of the worker while decisions wait; approvals sent while it is down count once it is back', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool: 'change_tool', args: { n: i } } });
      expect(res.body.status).toBe('pending_approval');
      ids.push(res.body.decision_id);
    }
    for (const id of ids) await eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'NotificationSent' || e.type === 'ApprovalRequested') ? true : undefined));

    await stack.worker.stop('SIGKILL');
    // Approve while no worker runs: the API holds the answer until a worker takes it.
    const answers = ids.map((id) => api({ url: stack.url, key: ops.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' }));
    await new Promise((r) => setTimeout(r, 2_000));
    stack.worker = await stack.startWorker();
    for (const a of await Promise.all(answers)) expect(a.body, JSON.stringify(a.body)).toMatchObject({ counted: true, decision_status: 'final' });

    for (const id of ids) {
      const final = await api(stack, 'GET', `/v1/decisions/${id}?wait=30`);
      expect(final.body).toMatchObject({ decision: 'ALLOW', status: 'final' });
      await eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'ReceiptIssued') ? true : undefined));
      const events = await expectCleanStream(stack, id);
      expect(events.filter((e) => e.type === 'ApprovalGranted')).toHaveLength(1);
      expect(events.filter((e) => e.type === 'DecisionFinalized')).toHaveLength(1);
    }
  });

  it('an answer that reaches a run before its first task is done counts (it was refused: "the run has not been recorded yet")', async () => {
    // No worker runs, so the run's first task waits; the answer is attested as the API would, and sent to the
    // run itself, so it is delivered in that same first task once a worker starts.
    await stack.worker.stop('SIGTERM');
    const args = { n: 'early' };
    const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool: 'change_tool', args } });
    expect(res.body.status).toBe('pending_approval');
    const id = res.body.decision_id;
    const message = attestedAnswer(stack, { decisionId: id, approverId: ops.id, roles: ['approver'], groups: ['ops'], args, snapshotHash: res.body.snapshot_hash });
    const connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
    try {
      const handle = new Client({ connection }).workflow.getHandle(workflowIdFor('default', id));
      const answered = handle.executeUpdate(answerUpdate, { args: [message] }).then((r) => r, (err: unknown) => err);
      await new Promise((r) => setTimeout(r, 1_000));
      stack.worker = await stack.startWorker();
      const result = await answered;
      expect(result, String((result as Error)?.cause ?? result)).toMatchObject({ counted: true, round: 1, decision_status: 'final' });
    } finally {
      await connection.close();
    }
    const final = await api(stack, 'GET', `/v1/decisions/${id}?wait=30`);
    expect(final.body).toMatchObject({ decision: 'ALLOW', status: 'final' });
    const events = await expectCleanStream(stack, id);
    expect(events.filter((e) => e.type === 'ApprovalGranted')).toHaveLength(1);
  });

  it('a retry while no worker has taken the run yet gets the same decision, not a wait without end', async () => {
    await stack.worker.stop('SIGTERM');
    let id: string | undefined;
    try {
      const body = { agent: { id: 'bot' }, action: { tool: 'change_tool', args: { n: 'no-worker' } }, idempotency_key: 'retry-without-worker' };
      const first = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', body);
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      // No row is written until a worker runs the first task: the retry finds the run in Temporal only.
      const again = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', body);
      expect(again.status, JSON.stringify(again.body)).toBe(200);
      expect(again.body).toEqual(first.body);
      id = first.body.decision_id;
    } finally {
      stack.worker = await stack.startWorker();
    }
    // Its first task done before the next test: a crashing worker there must meet only its own run's append.
    if (id) await eventually(async () => ((await runEvents(stack, id)).length > 0 ? true : undefined));
  });

  it('a worker killed after its append commits and before the activity returns: the retry writes nothing new', async () => {
    await quiesce(stack);
    await stack.worker.stop('SIGTERM');
    const crashing = await stack.startWorker({ COUNTERSIGN_CRASH_AT: 'after-append-commit' });
    // A failure before the restart below must not leave the next tests without a worker.
    let restarted = false;
    try {
      const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool: 'read_tool' }, idempotency_key: `crash-${Date.now()}` });
      expect(res.body.decision).toBe('ALLOW');
      const id = res.body.decision_id;
      await new Promise<void>((resolve) => { if (crashing.child.exitCode !== null || crashing.child.signalCode !== null) resolve(); else crashing.child.once('exit', () => resolve()); });
      expect(crashing.child.signalCode).toBe('SIGKILL');
      // A run final at its start commits its events and its receipt in one statement (patch final-in-one-task).
      const committed = await runEvents(stack, id);
      expect(committed.map((e) => e.type)).toEqual(['DecisionRequested', 'PolicyEvaluated', 'DecisionFinalized', 'ReceiptIssued']);

      // The restarted worker retries the activity (its start-to-close ran out): it finds the events by their ids,
      // writes nothing, and the run goes on to its outcome window.
      stack.worker = await stack.startWorker();
      restarted = true;
      const client = new Client({ connection: await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! }) });
      const handle = client.workflow.getHandle(workflowIdFor('default', id));
      await eventually(async () => {
        const history = await handle.fetchHistory();
        const tasks = (history.events ?? []).filter((e) => e.workflowTaskCompletedEventAttributes).length;
        return tasks >= 1 && (history.events ?? []).some((e) => e.timerStartedEventAttributes) ? true : undefined;
      }, 60_000, 'the retried task to complete');
      await client.connection.close();
      const events = await expectCleanStream(stack, id);
      expect(events.map((e) => e.type)).toEqual(['DecisionRequested', 'PolicyEvaluated', 'DecisionFinalized', 'ReceiptIssued']);
      expect(events.map((e) => e.event_id)).toEqual(committed.map((e) => e.event_id));
    } finally {
      if (!restarted) {
        await crashing.stop('SIGKILL').catch(() => undefined);
        stack.worker = await stack.startWorker();
      }
    }
  });

  it('an API killed after the workflow start and before it answers: the retry gets the same decision, one workflow, one set of events', async () => {
    const port = String(await freePort());
    const crashing = await startProcess('api-crash', 'services/api/main.ts', { ...stack.env, COUNTERSIGN_PORT: port, COUNTERSIGN_CRASH_AT: 'after-workflow-start', COUNTERSIGN_LOG_LEVEL: 'info' }, /api listening/);
    const key = `api-crash-${Date.now()}`;
    const body = { agent: { id: 'bot' }, action: { tool: 'change_tool', args: { n: 'crash' } }, idempotency_key: key };
    const lost = await fetch(`http://127.0.0.1:${port}/v1/decisions`, { method: 'POST', headers: { authorization: `Bearer ${agent.key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(() => 'answered', () => 'connection lost');
    expect(lost).toBe('connection lost');
    await crashing.stop();

    const retry = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', body);
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({ decision: 'REQUIRE_APPROVAL', status: 'pending_approval' });
    const again = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', body);
    expect(again.body).toEqual(retry.body);
    const id = retry.body.decision_id;
    await eventually(async () => ((await runEvents(stack, id)).length >= 3 ? true : undefined));
    await expectCleanStream(stack, id);
    expect(await eventually(async () => { const n = await workflowCount(stack.env['TEMPORAL_ADDRESS']!, workflowIdFor('default', id)); return n > 0 ? n : undefined; })).toBe(1);
  });
});

describe('waiting workflows and their timers survive a restart of the Temporal server', () => {
  let temporal: ChildProcess | null = null;
  let stack: TestStack;
  let agent: Who, ops: Who;
  let address = '';
  const dbFile = path.join(mkdtempSync(path.join(tmpdir(), 'cs-temporal-')), 'temporal.db');
  let ports: [number, number] = [0, 0];

  const startTemporal = async () => {
    const bin = process.env['TEMPORAL_CLI'];
    if (!bin) throw new Error('TEMPORAL_CLI is not set: run through `make test`');
    temporal = spawn(bin, ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(ports[0]), '--ui-port', String(ports[1]), '--headless', '--db-filename', dbFile, '--log-level', 'error'], { stdio: 'ignore' });
    await eventually(async () => {
      const c = await Connection.connect({ address, connectTimeout: 1_000 });
      await c.workflowService.getSystemInfo({});
      await c.close();
      return true;
    }, 60_000, 'the private Temporal server');
  };
  const stopTemporal = async () => {
    const t = temporal;
    if (!t || t.exitCode !== null) return;
    const exited = new Promise((r) => t.once('exit', r));
    t.kill('SIGTERM');
    await exited;
  };

  beforeAll(async () => {
    ports = [await freePort(), await freePort()];
    address = `127.0.0.1:${ports[0]}`;
    await startTemporal();
    stack = await startTestStack({ TEMPORAL_ADDRESS: address });
    await activateYaml(stack, POLICY);
    agent = await addPrincipal(stack, { name: 'bot', kind: 'agent', roles: ['agent'] });
    ops = await addPrincipal(stack, { name: 'Olga', roles: ['approver'], groups: ['ops'] });
  });
  afterAll(async () => {
    await stack?.stop();
    await stopTemporal();
  });

  it('keeps a waiting approval and a running timer through the restart', async () => {
    const ask = (tool: string) => api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool } });
    const waiting = (await ask('change_tool')).body.decision_id;
    const timed = (await ask('timer_tool')).body.decision_id;
    for (const id of [waiting, timed]) await eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'ApprovalRequested') ? true : undefined));

    await stopTemporal();
    await new Promise((r) => setTimeout(r, 1_000));
    await startTemporal();

    const approved = await eventually(async () => {
      const r = await api({ url: stack.url, key: ops.key }, 'POST', `/v1/decisions/${waiting}/approvals`, { verdict: 'approve' });
      return r.status === 200 ? r : undefined;
    }, 60_000, 'the approval after the restart');
    expect(approved.body).toMatchObject({ counted: true, decision_status: 'final' });
    // The 12 s timer, started before the restart, still fires: the run expires to its fallback.
    const expired = await api(stack, 'GET', `/v1/decisions/${timed}?wait=60`);
    expect(expired.body).toMatchObject({ decision: 'DENY', status: 'final' });
    expect((await runEvents(stack, timed)).map((e) => e.type)).toContain('ApprovalExpired');
    await expectCleanStream(stack, waiting);
    await expectCleanStream(stack, timed);
  });
});
