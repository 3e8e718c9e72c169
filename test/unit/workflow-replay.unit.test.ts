import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { BUNDLER_OPTIONS, WORKFLOW_INTERCEPTOR_MODULES } from '../../services/worker/workflows-path.ts';

const EventType = temporal.api.enums.v1.EventType;
const DIR = path.resolve(import.meta.dirname, '..', 'fixtures', 'histories');
const WORKFLOWS = path.resolve(import.meta.dirname, '..', '..', 'workflows', 'index.ts');
// Every branch of the decision workflow and of the four-eyes activation workflow, recorded against the real
// stack by test/histories/record-histories.ts (the channels' reminder, escalation and closing notice by
// test/histories/record-channel-histories.ts; parallel requirements, ladders, delegation, edits and judgment
// rules by test/histories/record-approval-histories.ts).
const BRANCHES = [
  'allow', 'deny', 'constraints', 'approve', 'reject', 'quorum', 'escalate', 'expire', 'override-granted', 'override-denied', 'outcome', 'early-answer',
  'channels-remind-escalate-expire', 'policy-activation-approved', 'policy-activation-rejected', 'policy-activation-expired',
  'requirements', 'ladder', 'delegation', 'approve-with-edit', 'judgment-people', 'judgment-evaluated',
];

const load = (name: string) => historyFromJSON(JSON.parse(readFileSync(path.join(DIR, `${name}.json`), 'utf8')));
const recorded = () => readdirSync(DIR).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, ''));

// Nothing has been released, so the workflows have one code path and one recorded generation of histories:
// a change to a workflow's commands re-records them (and fails here until it does). After a release, runs in
// flight are kept working by Worker Versioning or a patch (README, "Versioning workflow changes").
describe('replay tier: recorded workflow histories', () => {
  it('has a recorded history for every branch, and nothing else', () => {
    expect(recorded().sort()).toEqual([...BRANCHES].sort());
    expect(readdirSync(DIR).filter((f) => statSync(path.join(DIR, f)).isDirectory())).toEqual([]);
  });

  it('each branch went its way: answered, overridden and reported runs accepted their updates; escalations and expiries fired their timers', () => {
    const types = (name: string) => (load(name).events ?? []).map((e) => e.eventType);
    const accepted = (name: string) => types(name).filter((t) => t === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED).length;
    for (const [name, updates] of Object.entries({ approve: 1, reject: 1, quorum: 2, escalate: 1, 'override-granted': 2, 'override-denied': 1, outcome: 1, 'early-answer': 1 })) {
      expect(accepted(name), name).toBe(updates);
    }
    for (const name of ['escalate', 'expire', 'override-denied', 'channels-remind-escalate-expire', 'ladder']) {
      expect(types(name).filter((t) => t === EventType.EVENT_TYPE_TIMER_FIRED).length, name).toBeGreaterThan(1);
    }
    // Two requirements of one round: both groups answered. A ladder: answered at its third level, after two
    // escalations. A delegate's answer, an edited approval and a people-decided judgment rule: one answer each.
    for (const [name, updates] of Object.entries({ requirements: 2, ladder: 1, delegation: 1, 'approve-with-edit': 1, 'judgment-people': 1, 'judgment-evaluated': 0 })) {
      expect(accepted(name), name).toBe(updates);
    }
    expect(types('ladder').filter((t) => t === EventType.EVENT_TYPE_TIMER_FIRED).length).toBeGreaterThanOrEqual(3);
    // The edited arguments travelled in the answer; the evaluator's branch asked it (an activity) and no person.
    const payloads = (name: string) => readFileSync(path.join(DIR, `${name}.json`), 'utf8').match(/"data":\s*"[A-Za-z0-9+/=]+"/g)?.map((d) => Buffer.from(d.split('"')[3]!, 'base64').toString('utf8')).join('\n') ?? '';
    expect(payloads('approve-with-edit')).toContain('"edit":{"args":{"order":"o-1","amount":600}');
    const activities = (name: string) => (load(name).events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name] : []));
    expect(activities('judgment-evaluated')).toContain('judgeRequest');
    expect(activities('judgment-evaluated')).not.toContain('notifyApprovers');
  });

  it('the recorded histories carry no patch markers: one code path', () => {
    const markers: string[] = [];
    for (const name of recorded()) {
      for (const e of load(name).events ?? []) if (e.markerRecordedEventAttributes?.markerName === 'core_patch') markers.push(name);
    }
    expect(markers).toEqual([]);
  });

  // What a decision costs the server beyond its start is mostly its workflow tasks and activity tasks: a run
  // final at its start has a single workflow task (events and receipt in one local activity) before it waits
  // out its outcome window.
  it('a run final at its start (allow, deny, constraints) takes one workflow task and no activity task before its window', () => {
    for (const branch of ['allow', 'deny', 'constraints']) {
      const events = load(branch).events ?? [];
      const timer = events.findIndex((e) => e.timerStartedEventAttributes);
      expect(timer, branch).toBeGreaterThan(0);
      const before = events.slice(0, timer);
      expect(before.filter((e) => e.workflowTaskCompletedEventAttributes).length, branch).toBe(1);
      expect(before.filter((e) => e.activityTaskScheduledEventAttributes).length, branch).toBe(0);
    }
  });

  it('replays every recorded history against today’s workflow code', async () => {
    const histories = recorded().map((name) => ({ workflowId: name, history: load(name) }));
    const failures: string[] = [];
    for await (const r of Worker.runReplayHistories({ workflowsPath: WORKFLOWS, bundlerOptions: BUNDLER_OPTIONS, interceptors: { workflowModules: WORKFLOW_INTERCEPTOR_MODULES } }, histories)) {
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    expect(failures).toEqual([]);
  }, 180_000);

  it('fails on a deliberately incompatible history (an activity the workflow never schedules)', async () => {
    const history = load('approve');
    const scheduled = history.events!.find((e) => e.activityTaskScheduledEventAttributes)!;
    scheduled.activityTaskScheduledEventAttributes!.activityType = { name: 'sendFax' };
    await expect(Worker.runReplayHistory({ workflowsPath: WORKFLOWS, bundlerOptions: BUNDLER_OPTIONS, interceptors: { workflowModules: WORKFLOW_INTERCEPTOR_MODULES } }, history, 'broken')).rejects.toThrow(/[Nn]ondeterminism|DeterminismViolation/);
  }, 120_000);
});
