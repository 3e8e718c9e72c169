import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { BUNDLER_OPTIONS } from '../../services/worker/workflows-path.ts';
import { FINAL_IN_ONE_TASK_PATCH, FLUSH_BEFORE_NOTIFY_PATCH, LOCAL_STORE_PATCH, NO_REQUEST_FOR_CLOSED_ROUND_PATCH, REMINDERS_PATCH, ROUND_CLOSED_NOTICE_PATCH, SERIAL_RECEIPTS_PATCH } from '../../workflows/decision-workflow.ts';

const DIR = path.resolve(import.meta.dirname, '..', 'fixtures', 'histories');
const WORKFLOWS = path.resolve(import.meta.dirname, '..', '..', 'workflows', 'index.ts');
const BRANCHES = ['allow', 'deny', 'constraints', 'approve', 'reject', 'quorum', 'escalate', 'expire', 'override-granted', 'override-denied', 'outcome'];
// Recorded for the latest generation too: policyActivationWorkflow (four-eyes activation), and the approval
// channels' reminder, escalation notice and closing notice (test/histories/record-channel-histories.ts).
const LATEST_BRANCHES = [...BRANCHES, 'early-answer', 'policy-activation-approved', 'policy-activation-rejected', 'policy-activation-expired', 'channels-remind-escalate-expire'];

const load = (name: string, generation = '') => historyFromJSON(JSON.parse(readFileSync(path.join(DIR, generation, `${name}.json`), 'utf8')));
// The first generation sits at the top of the folder; later ones (recorded after a `patched` change) in folders.
const GENERATIONS = ['', ...readdirSync(DIR).filter((f) => statSync(path.join(DIR, f)).isDirectory()).sort()];

// Recorded histories of every branch, of every generation of the workflow's code, replay against today's
// code: a change to the workflow's commands that would break runs already in flight fails here. Record a new
// generation with test/histories/record-histories.ts GENERATION.
describe('replay tier: recorded workflow histories', () => {
  // Older generations keep what was recorded then; the first and the latest cover every branch of their code.
  it('the first generation has a recorded history for every branch it had', () => {
    const present = readdirSync(DIR).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, ''));
    expect(present.sort()).toEqual(expect.arrayContaining(BRANCHES));
  });

  it('the latest generation has a recorded history for every branch of today’s code', () => {
    const latest = GENERATIONS[GENERATIONS.length - 1]!;
    const present = readdirSync(path.join(DIR, latest)).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, ''));
    expect(present.sort()).toEqual(expect.arrayContaining(LATEST_BRANCHES));
  });

  it('the latest generation went down every patched path of the decision workflow', () => {
    const latest = GENERATIONS[GENERATIONS.length - 1]!;
    const patches = new Set<string>();
    for (const f of readdirSync(path.join(DIR, latest)).filter((x) => x.endsWith('.json'))) {
      for (const e of load(f.replace(/\.json$/, ''), latest).events ?? []) {
        const m = e.markerRecordedEventAttributes;
        if (m?.markerName !== 'core_patch') continue;
        for (const p of m.details?.['patch-data']?.payloads ?? []) patches.add((JSON.parse(Buffer.from(p.data!).toString('utf8')) as { id: string }).id);
      }
    }
    expect([...patches].sort()).toEqual(expect.arrayContaining([LOCAL_STORE_PATCH, SERIAL_RECEIPTS_PATCH, REMINDERS_PATCH, ROUND_CLOSED_NOTICE_PATCH, FLUSH_BEFORE_NOTIFY_PATCH, FINAL_IN_ONE_TASK_PATCH, NO_REQUEST_FOR_CLOSED_ROUND_PATCH]));
  });

  // Issue 6, sustained throughput: what a decision costs the server beyond its start is mostly its workflow
  // tasks and activity tasks. A run final at its start now has one of each kind of nothing: a single workflow
  // task (events and receipt in one local activity) before it waits out its outcome window.
  it('a run final at its start (allow, deny, constraints) takes one workflow task and no activity task before its window', () => {
    const latest = GENERATIONS[GENERATIONS.length - 1]!;
    for (const branch of ['allow', 'deny', 'constraints']) {
      const events = load(branch, latest).events ?? [];
      const timer = events.findIndex((e) => e.timerStartedEventAttributes);
      expect(timer, branch).toBeGreaterThan(0);
      const before = events.slice(0, timer);
      expect(before.filter((e) => e.workflowTaskCompletedEventAttributes).length, branch).toBe(1);
      expect(before.filter((e) => e.activityTaskScheduledEventAttributes).length, branch).toBe(0);
    }
  });

  it('has more than one generation, so the patched paths are replayed too', () => {
    expect(GENERATIONS.length).toBeGreaterThan(1);
  });

  it('replays every recorded history of every generation against today’s workflow code', async () => {
    const histories = GENERATIONS.flatMap((g) =>
      readdirSync(path.join(DIR, g)).filter((f) => f.endsWith('.json')).map((f) => ({ workflowId: `${g || 'first'}/${f}`, history: load(f.replace(/\.json$/, ''), g) })));
    const failures: string[] = [];
    for await (const r of Worker.runReplayHistories({ workflowsPath: WORKFLOWS, bundlerOptions: BUNDLER_OPTIONS }, histories)) {
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    expect(failures).toEqual([]);
  }, 180_000);

  it('fails on a deliberately incompatible history (an activity the workflow never schedules)', async () => {
    const history = load('allow');
    const scheduled = history.events!.find((e) => e.activityTaskScheduledEventAttributes)!;
    scheduled.activityTaskScheduledEventAttributes!.activityType = { name: 'sendFax' };
    await expect(Worker.runReplayHistory({ workflowsPath: WORKFLOWS, bundlerOptions: BUNDLER_OPTIONS }, history, 'broken')).rejects.toThrow(/[Nn]ondeterminism|DeterminismViolation/);
  }, 120_000);
});
