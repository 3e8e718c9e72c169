import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';

const DIR = path.resolve(import.meta.dirname, '..', 'fixtures', 'histories');
const WORKFLOWS = path.resolve(import.meta.dirname, '..', '..', 'workflows', 'index.ts');
const BRANCHES = ['allow', 'deny', 'constraints', 'approve', 'reject', 'quorum', 'escalate', 'expire', 'override-granted', 'override-denied', 'outcome'];

const load = (name: string) => historyFromJSON(JSON.parse(readFileSync(path.join(DIR, `${name}.json`), 'utf8')));

// Recorded histories of every branch replay against today's workflow code: a change to the workflow's
// commands that would break runs already in flight fails here. Re-record with test/histories/record-histories.ts.
describe('replay tier: recorded workflow histories', () => {
  it('has a recorded history for every branch', () => {
    const present = readdirSync(DIR).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, ''));
    expect(present.sort()).toEqual(expect.arrayContaining(BRANCHES));
  });

  it('replays every branch against today’s workflow code', async () => {
    const histories = BRANCHES.map((b) => ({ workflowId: b, history: load(b) }));
    const failures: string[] = [];
    for await (const r of Worker.runReplayHistories({ workflowsPath: WORKFLOWS }, histories)) {
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    expect(failures).toEqual([]);
  }, 120_000);

  it('fails on a deliberately incompatible history (an activity the workflow never schedules)', async () => {
    const history = load('allow');
    const scheduled = history.events!.find((e) => e.activityTaskScheduledEventAttributes)!;
    scheduled.activityTaskScheduledEventAttributes!.activityType = { name: 'sendFax' };
    await expect(Worker.runReplayHistory({ workflowsPath: WORKFLOWS }, history, 'broken')).rejects.toThrow(/[Nn]ondeterminism|DeterminismViolation/);
  }, 120_000);
});
