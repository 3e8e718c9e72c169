import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { decisionIdFor } from '../../services/decisions/decision-id.ts';
import { loadAttestationSecret } from '../../services/decisions/attestation.ts';
import { answerApproval } from '../../services/decisions/run-messages.ts';
import type { Principal } from '../../services/identity/principals.ts';
import { BUNDLER_OPTIONS } from '../../services/worker/workflows-path.ts';
import { activateYaml, addPrincipal, api, eventually, startTestStack, type AppProcess, type TestStack } from './harness.ts';

// A worker killed after a local activity's append commits and before Temporal records the workflow task that ran
// it: the task's next attempt starts from a history without that append, and an answer sent meanwhile comes in
// the same attempt. That attempt must take the log as it stands (never a second event at a version, never an
// answer lost or counted twice), and every answer must be counted once.
const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: adoption-test, name: Adoption }
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
`;

const WORKFLOWS = path.resolve(import.meta.dirname, '..', '..', 'workflows', 'index.ts');

type Who = { id: string; key: string };
type Ev = { type: string; event_id: string; stream_version: number; data: Record<string, unknown> };

async function runEvents(stack: TestStack, id: string): Promise<Ev[]> {
  return (await stack.db.query<Ev>('SELECT type, event_id, stream_version, data FROM events WHERE stream_id = $1 ORDER BY stream_version', [`run/${id}`])).rows;
}

/** Contiguous versions, ids once each, the chain linked and the receipt verified by the API. */
async function expectSoundRun(stack: TestStack, id: string): Promise<Ev[]> {
  await eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'ReceiptIssued') ? true : undefined), 60_000, 'the receipt');
  const events = await runEvents(stack, id);
  expect(events.map((e) => e.stream_version)).toEqual(events.map((_, i) => i + 1));
  expect(new Set(events.map((e) => e.event_id)).size).toBe(events.length);
  const shown = await api(stack, 'GET', `/v1/decisions/${id}/events`);
  expect(shown.body.chain_linked).toBe(true);
  expect(shown.body.receipt).toMatchObject({ issued: true, verification: { ok: true } });
  return events;
}

const exited = (p: { child: { exitCode: number | null; signalCode: NodeJS.Signals | null; once: (e: 'exit', f: () => void) => unknown } }) =>
  new Promise<void>((resolve) => { if (p.child.exitCode !== null || p.child.signalCode !== null) resolve(); else p.child.once('exit', () => resolve()); });

describe('a run adopts what a lost attempt of its workflow task wrote', () => {
  let stack: TestStack;
  let agent: Who, olga: Who, omar: Who;
  const runs: string[] = [];

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

  /**
   * Runs `body` with the stack's worker replaced by one that dies at `crashAt`; `restart` starts a healthy worker
   * again. However `body` ends, a healthy worker runs afterwards (the next test needs one).
   */
  const withCrashingWorker = async (crashAt: string, body: (crashing: AppProcess, restart: () => Promise<void>) => Promise<void>) => {
    await stack.worker.stop('SIGTERM');
    const crashing = await stack.startWorker({ COUNTERSIGN_CRASH_AT: crashAt });
    let restarted = false;
    const restart = async () => {
      stack.worker = await stack.startWorker();
      restarted = true;
    };
    try {
      await body(crashing, restart);
    } finally {
      if (!restarted) {
        await crashing.stop('SIGKILL').catch(() => undefined);
        stack.worker = await stack.startWorker();
      }
    }
  };
  const announced = (id: string) =>
    eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'NotificationSent' || e.type === 'NotificationFailed') ? true : undefined), 30_000, 'the round to be announced');

  it('killed after the first append commits, with an answer sent while it is down: the answer counts once, after the events that stand', async () => {
    await withCrashingWorker('after-append-commit', async (crashing, restart) => {
      const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool: 'change_tool', args: { n: 1 } } });
      expect(res.body.status).toBe('pending_approval');
      const id = res.body.decision_id;
      runs.push(id);
      await exited(crashing);
      expect(crashing.child.signalCode).toBe('SIGKILL');
      const lost = await runEvents(stack, id);
      expect(lost.map((e) => e.type)).toEqual(['DecisionRequested', 'PolicyEvaluated', 'ApprovalRequested']);

      // The answer reaches the run in the retried first task, whose own ApprovalRequested (a deadline from the
      // new attempt's clock) differs from the one that stands.
      const answer = api({ url: stack.url, key: olga.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
      await new Promise((r) => setTimeout(r, 1_000));
      await restart();
      const answered = await answer;
      expect(answered.body, JSON.stringify(answered.body)).toMatchObject({ counted: true, decision_status: 'final' });

      const final = await api(stack, 'GET', `/v1/decisions/${id}?wait=30`);
      expect(final.body).toMatchObject({ decision: 'ALLOW', status: 'final' });
      const events = await expectSoundRun(stack, id);
      expect(events.slice(0, 3)).toEqual(lost);
      expect(events.filter((e) => e.type === 'ApprovalRequested')).toHaveLength(1);
      expect(events.filter((e) => e.type === 'ApprovalGranted')).toHaveLength(1);
      expect(events.filter((e) => e.type === 'DecisionFinalized')).toHaveLength(1);
    });
  });

  it('killed after an answer commits, a second answer sent while it is down: each approver is counted once, whatever order the next attempt takes them in', async () => {
    const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool: 'payout_tool', args: { n: 2 } } });
    expect(res.body.status).toBe('pending_approval');
    const id = res.body.decision_id;
    runs.push(id);
    await announced(id);
    await withCrashingWorker('after-answer-commit', async (crashing, restart) => {
      const first = api({ url: stack.url, key: olga.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
      await exited(crashing);
      expect(crashing.child.signalCode).toBe('SIGKILL');
      const lost = await runEvents(stack, id);
      expect(lost.filter((e) => e.type === 'ApprovalGranted').map((e) => e.data['approver_id'])).toEqual([olga.id]);

      const second = api({ url: stack.url, key: omar.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
      await new Promise((r) => setTimeout(r, 1_000));
      await restart();
      for (const a of await Promise.all([first, second])) expect(a.body, JSON.stringify(a.body)).toMatchObject({ counted: true });

      const final = await api(stack, 'GET', `/v1/decisions/${id}?wait=30`);
      expect(final.body).toMatchObject({ decision: 'ALLOW', status: 'final' });
      const events = await expectSoundRun(stack, id);
      expect(events.slice(0, lost.length)).toEqual(lost);
      expect(events.filter((e) => e.type === 'ApprovalGranted').map((e) => e.data['approver_id']).sort()).toEqual([olga.id, omar.id].sort());
      expect(events.filter((e) => e.type === 'DecisionFinalized')).toHaveLength(1);
    });
  });

  it('killed after an answer commits, a second answer to the same one-approver round sent while it is down: the first stands, the second is refused, the run ends', async () => {
    const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool: 'change_tool', args: { n: 6 } } });
    expect(res.body.status).toBe('pending_approval');
    const id = res.body.decision_id as string;
    await announced(id);
    await withCrashingWorker('after-answer-commit', async (crashing, restart) => {
      const first = api({ url: stack.url, key: olga.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
      await exited(crashing);
      // Whichever the next attempt takes first, the log's answer stands: the second is refused (when decided
      // before the first is delivered again, once the append finds the first in the log), and nothing waits on it.
      const second = api({ url: stack.url, key: omar.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
      await new Promise((r) => setTimeout(r, 1_000));
      await restart();
      const [a, b] = await Promise.all([first, second]);
      expect(a.body, JSON.stringify(a.body)).toMatchObject({ counted: true });
      expect(b.status, JSON.stringify(b.body)).toBe(409);
      const final = await api(stack, 'GET', `/v1/decisions/${id}?wait=30`);
      expect(final.body).toMatchObject({ decision: 'ALLOW', status: 'final' });
      const events = await expectSoundRun(stack, id);
      expect(events.filter((e) => e.type === 'ApprovalGranted').map((e) => e.data['approver_id'])).toEqual([olga.id]);
    });
  });

  // Found by the chaos test: the run's first task completed once without its append (the local activity ran past
  // the task's heartbeat), then its worker died after the append committed. An answer sent meanwhile reached the
  // next worker in the same activation as the run's start, and took its turn before the start's append; a replay
  // of that history delivers it one activation later, so the append came first and the run failed to replay.
  it('a first task heartbeated past a slow append, then lost with its worker: an answer sent meanwhile counts, and the history replays', async () => {
    const lock = await stack.db.connect();
    const connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
    try {
      await withCrashingWorker('after-append-commit', async (crashing, restart) => {
        // The append waits on its stream's lock past 80% of the task's timeout (10 s): the SDK completes the task without it.
        // The run's id follows from its idempotency key, so the stream's append lock can be held before it starts.
        const key = `heartbeat-${Date.now()}`;
        await lock.query('BEGIN');
        await lock.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`run/${decisionIdFor('default', agent.id, key)}`]);
        const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool: 'change_tool', args: { n: 5 } }, idempotency_key: key });
        expect(res.body.status, JSON.stringify(res.body)).toBe('pending_approval');
        const id = res.body.decision_id as string;
        expect(id).toBe(decisionIdFor('default', agent.id, key));
        runs.push(id);
        const handle = new Client({ connection }).workflow.getHandle(workflowIdFor('default', id));
        await eventually(async () => ((await handle.fetchHistory()).events!.filter((e) => e.workflowTaskCompletedEventAttributes).length >= 1 ? true : undefined), 30_000, 'the first task to heartbeat');
        await lock.query('COMMIT');
        await exited(crashing);
        expect(crashing.child.signalCode).toBe('SIGKILL');
        expect((await runEvents(stack, id)).length).toBeGreaterThan(0);

        const answer = api({ url: stack.url, key: olga.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
        await new Promise((r) => setTimeout(r, 1_000));
        await restart();
        expect((await answer).body, JSON.stringify((await answer).body)).toMatchObject({ counted: true });
        const final = await api(stack, 'GET', `/v1/decisions/${id}?wait=30`);
        expect(final.body).toMatchObject({ decision: 'ALLOW', status: 'final' });
        await expectSoundRun(stack, id);
      });
    } finally {
      await lock.query('ROLLBACK').catch(() => undefined);
      lock.release();
      await connection.close();
    }
  });

  it('a message for a run whose first events no worker has recorded yet: 503 with Retry-After, nothing recorded, and counted once a worker runs', async () => {
    await stack.worker.stop('SIGTERM');
    let restarted = false;
    try {
      const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool: 'change_tool', args: { n: 3 } } });
      expect(res.body.status).toBe('pending_approval');
      const id = res.body.decision_id;
      const early = await api({ url: stack.url, key: olga.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
      expect(early.status, JSON.stringify(early.body)).toBe(503);
      expect(early.headers.get('retry-after')).toBe('1');
      expect(early.body.detail).toMatch(/not recorded yet/);
      const outcome = await api({ url: stack.url, key: agent.key }, 'POST', `/v1/decisions/${id}/outcome`, { status: 'succeeded', output: null });
      expect(outcome.status, JSON.stringify(outcome.body)).toBe(503);
      expect(await runEvents(stack, id)).toEqual([]);

      stack.worker = await stack.startWorker();
      restarted = true;
      await eventually(async () => ((await runEvents(stack, id)).length > 0 ? true : undefined), 30_000, 'the first events');
      const answered = await api({ url: stack.url, key: olga.key }, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
      expect(answered.body, JSON.stringify(answered.body)).toMatchObject({ counted: true, decision_status: 'final' });
    } finally {
      if (!restarted) stack.worker = await stack.startWorker();
    }
  });

  it('an answer whose reply was lost after Temporal admitted it, sent again: the same update answers, counted once', async () => {
    const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool: 'payout_tool', args: { n: 4 } } });
    const id = res.body.decision_id as string;
    await eventually(async () => ((await runEvents(stack, id)).some((e) => e.type === 'ApprovalRequested') ? true : undefined), 30_000, 'the round');
    const connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
    try {
      const client = new Client({ connection, namespace: stack.env['TEMPORAL_NAMESPACE'] ?? 'default' });
      // The first try reaches the run and is counted, but its caller hears what a worker dying with the task in
      // flight makes Temporal answer; the API sends the same message again.
      let tries = 0;
      const lossy = new Proxy(client.workflow, {
        get(target, prop) {
          if (prop !== 'getHandle') return Reflect.get(target, prop);
          return (...a: Parameters<typeof target.getHandle>) => {
            const h = target.getHandle(...a);
            return new Proxy(h, {
              get(ht, hp) {
                if (hp !== 'executeUpdate') return Reflect.get(ht, hp);
                return async (...u: Parameters<typeof ht.executeUpdate>) => {
                  tries += 1;
                  const out = await ht.executeUpdate(...u);
                  if (tries === 1) throw new Error('Workflow Task in failed state');
                  return out;
                };
              },
            });
          };
        },
      });
      const temporal = new Proxy(client, { get: (t, p) => (p === 'workflow' ? lossy : Reflect.get(t, p)) });
      const deps = { db: stack.db, temporal, secret: () => loadAttestationSecret(stack.env['COUNTERSIGN_KEYS_DIR']!) };
      const principal: Principal = { id: olga.id, tenant_id: 'default', name: 'Olga', kind: 'person', roles: ['approver'], groups: ['ops'], platform_admin: false, agent_id: null, acts_for: [], key_prefix: '' };
      const answered = await answerApproval(deps, principal, id, { verdict: 'approve' }, 'api');
      expect(tries).toBe(2);
      expect(answered).toMatchObject({ counted: true, round: 1, round_status: 'open' });
      const events = await runEvents(stack, id);
      expect(events.filter((e) => e.type === 'ApprovalGranted').map((e) => e.data['approver_id'])).toEqual([olga.id]);
    } finally {
      await connection.close();
    }
  });

  it('the histories those runs left replay, adoptions included', async () => {
    expect(runs).toHaveLength(3);
    const connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
    try {
      const client = new Client({ connection });
      const histories = await Promise.all(runs.map(async (id) => {
        const handle = client.workflow.getHandle(workflowIdFor('default', id));
        return { workflowId: handle.workflowId, history: await handle.fetchHistory() };
      }));
      // The adoption is in each history: a local activity's recorded result that returned the events that stood.
      const adoptions = histories.map(({ history }) => (history.events ?? []).filter((e) => {
        const data = e.markerRecordedEventAttributes?.details?.['result']?.payloads?.[0]?.data;
        return data ? new TextDecoder().decode(data).includes('"adopted"') : false;
      }).length);
      expect(adoptions.every((n) => n > 0), JSON.stringify(adoptions)).toBe(true);
      const failures: string[] = [];
      for await (const r of Worker.runReplayHistories({ workflowsPath: WORKFLOWS, bundlerOptions: BUNDLER_OPTIONS }, histories)) {
        if (r.error) failures.push(`${r.workflowId}: ${r.error.message.slice(0, 300)}`);
      }
      expect(failures).toEqual([]);
    } finally {
      await connection.close();
    }
  }, 120_000);
});
