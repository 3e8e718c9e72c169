// Decision benchmark (issue 6), on a whole test stack (API, worker, publisher as child processes; own database,
// topic and task queue) against the shared Temporal, each part compared with bare Temporal on the same server,
// driven by a no-op worker in a process of its own (bench/noop-worker.ts; bench/noop-workflow.ts, its own task queue):
//   (a) ALLOW round trip, POST /v1/decisions vs client.workflow.start of a no-op workflow, sequential and
//       interleaved, N=200: p50/p99 ratios (goals p50 <= 1.3x, p99 <= 1.5x);
//   (b) sustained throughput at concurrency 8, rounds of 5 s phases (bare, dec, dec, bare): decisions/s vs no-op
//       starts/s (goal >= 0.8x), also drained (each phase until its runs are done), and CPU per process;
//   (c) approve -> a waiting long-poll (GET /v1/decisions/{id}?wait=30, issued before the approve) answers,
//       vs a bare Temporal update round trip (no-op workflow with an update handler): p50 ratio (goal <= 1.5x);
//   (d) worker start with the prebuilt bundle: spawn the prebuilt worker (dist/worker.mjs, as `make up` runs
//       it) and, for comparison, services/worker/main.ts through tsx, to its "worker started" line (goal < 3 s).
//   eval "$(services/stack/stack.sh env)"; npx tsx bench/decision.ts [N] [approval rounds] [parts, e.g. abcd or c] [(b) rounds]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { activateYaml, addPrincipal, api, ROOT, startProcess, startTestStack } from '../test/int/harness.ts';
import { noop, poke, waitsForPoke } from './noop-workflow.ts';
import { WORKFLOW_BUNDLE, type EntryName } from '../services/build/build.ts';
import { workflowIdFor } from '../services/decisions/ids.ts';
import { statusQuery } from '../workflows/decision-workflow.ts';
import { cpuBetween, sampleCpu } from './lib/cpu.ts';

const N = Number(process.argv[2] ?? 200);
const approvalRounds = Number(process.argv[3] ?? 20);
const parts = process.argv[4] ?? 'abcd';
/** (b) runs this many rounds of bare, dec, dec, bare (5 s each): more rounds, less noise. */
const sustainedRounds = Number(process.argv[5] ?? 2);
const run = randomBytes(4).toString('hex');
// The checkout's own build (not the shared data directory's): benches of several checkouts on one machine must
// not replace each other's processes.
const buildDir = path.join(ROOT, '.data', 'bench');
const bundle = path.join(buildDir, WORKFLOW_BUNDLE);

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: bench-decisions, name: Decision benchmark }
scope: { level: tenant }
rules:
  - name: reports
    match: { tool: report_tool }
    decision: ALLOW
    reason: reports are fine
  - name: deploys
    match: { tool: deploy_tool, operation: Deploy }
    decision: REQUIRE_APPROVAL
    reason: deploys need an SRE
    approval: { approvers: [sre], quorum: 1, timeout: 1h, on_timeout: DENY }
`;

// Every process as `make up` and the container image run it: built to plain JavaScript (services/build/build.ts,
// with the workflow bundle beside them) and started with plain node, no tsx (which turns on source maps, and
// every stack trace made then pays for them). Built afresh into this checkout's own directory, so the worker
// never falls back to webpack at start-up.
execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'services/build/build.ts'), '--out', buildDir], {
  cwd: ROOT, env: process.env, stdio: ['ignore', 'ignore', 'inherit'],
});
Runtime.install({ logger: new DefaultLogger('WARN') });
// tsx turns on Node's source maps, which every stack trace the SDK captures in workflow code (one per promise)
// then pays for; the stack's worker runs prebuilt without them, and so does the no-op worker in this process.
process.setSourceMapsEnabled(false);
const built = (entry: EntryName) => path.join(buildDir, entry);
const stack = await startTestStack({ COUNTERSIGN_WORKFLOW_BUNDLE: bundle, COUNTERSIGN_LOG_LEVEL: 'warn', COUNTERSIGN_RATE_LIMIT: '1000000' }, { workerEntry: built('worker.mjs'), apiEntry: built('api.mjs'), publisherEntry: built('publisher.mjs') });
try {
  await activateYaml(stack, POLICY);
  const agent = await addPrincipal(stack, { name: 'bench bot', kind: 'agent', roles: ['agent'] });
  const approver = await addPrincipal(stack, { name: 'Sam', roles: ['approver'], groups: ['sre'] });
  const asAgent = { url: stack.url, key: agent.key };
  const asApprover = { url: stack.url, key: approver.key };

  const temporalAddress = stack.env['TEMPORAL_ADDRESS']!;
  const noopQueue = `bench-noop-${run}`;
  const noopWorker = await startProcess('noop-worker', 'bench/noop-worker.ts', { TEMPORAL_ADDRESS: temporalAddress, BENCH_NOOP_QUEUE: noopQueue }, /no-op worker ready/);
  const connection = await Connection.connect({ address: temporalAddress });
  const client = new Client({ connection });

  let seq = 0;
  const allow = async () => {
    const res = await api(asAgent, 'POST', '/v1/decisions', { agent: { id: 'bench-bot' }, action: { tool: 'report_tool', operation: 'Read', args: { n: (seq += 1) } } });
    if (res.status !== 200 || res.body.decision !== 'ALLOW') throw new Error(`unexpected decision answer ${res.status} ${JSON.stringify(res.body)}`);
  };
  const startedNoops: Array<{ result(): Promise<unknown> }> = [];
  const start = async () => {
    startedNoops.push(await client.workflow.start(noop, { taskQueue: noopQueue, workflowId: `bench-noop-${run}-${(seq += 1)}` }));
  };
  const timed = async (fn: () => Promise<void>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  const pct = (xs: number[], p: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
  };
  const fmt = (ms: number) => `${ms.toFixed(1)} ms`;

  // Warm-up: connections, JIT, the no-op worker's first tasks.
  for (let i = 0; i < 20; i++) { await allow(); await start(); }

  if (parts.includes('a')) {
  // (a) sequential, interleaved (alternating which goes first).
  const dec: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < N; i++) {
    if (i % 2 === 0) { dec.push(await timed(allow)); bare.push(await timed(start)); } else { bare.push(await timed(start)); dec.push(await timed(allow)); }
  }
  console.log(`(a) ALLOW round trip  N=${N}: p50 ${fmt(pct(dec, 50))}, p99 ${fmt(pct(dec, 99))}`);
  console.log(`    no-op start       N=${N}: p50 ${fmt(pct(bare, 50))}, p99 ${fmt(pct(bare, 99))}`);
  console.log(`    ratio p50 ${(pct(dec, 50) / pct(bare, 50)).toFixed(2)}x (goal <= 1.3x), p99 ${(pct(dec, 99) / pct(bare, 99)).toFixed(2)}x (goal <= 1.5x)`);
  // What HTTP alone costs the agent on this machine (fetch to the API and back, a route that does nothing): the
  // part of the ALLOW round trip that is neither Temporal's start nor our work.
  const http: number[] = [];
  for (let i = 0; i < N; i++) http.push(await timed(async () => { if ((await api(asAgent, 'GET', '/healthz')).status !== 200) throw new Error('healthz'); }));
  console.log(`    (GET /healthz round trip N=${N}: p50 ${fmt(pct(http, 50))})`);
  }

  // (b) sustained, concurrency 8: two halves each, interleaved.
  if (parts.includes('b')) {
  // Each phase also waits until its work is done: every no-op workflow completed, every decision's receipt
  // written (the run's last step before it waits out its outcome window). Without this, a phase counts starts
  // whose workflow tasks the next phase pays for, and a backlog that grows is not sustained throughput.
  const receipts = async () => Number((await stack.db.query(`SELECT count(*) AS n FROM events WHERE type = 'ReceiptIssued'`)).rows[0].n);
  const sustained = async (fn: () => Promise<void>, ms: number) => {
    const end = performance.now() + ms;
    const t = performance.now();
    let n = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (performance.now() < end) { await fn(); n += 1; }
    }));
    return { n, s: (performance.now() - t) / 1000 };
  };
  const d = { n: 0, s: 0, drained: 0, cpu: {} as Record<string, number> };
  const b = { n: 0, s: 0, drained: 0, cpu: {} as Record<string, number> };
  const order = Array.from({ length: sustainedRounds }, () => ['bare', 'dec', 'dec', 'bare'] as const).flat();
  for (const which of order) {
    const before = sampleCpu();
    const t = performance.now();
    const receiptsBefore = await receipts();
    startedNoops.length = 0;
    const m = await sustained(which === 'dec' ? allow : start, 5_000);
    if (which === 'dec') {
      while ((await receipts()) - receiptsBefore < m.n) await new Promise((r) => setTimeout(r, 20));
    } else {
      await Promise.all(startedNoops.map((h) => h.result()));
    }
    const acc = which === 'dec' ? d : b;
    acc.n += m.n;
    acc.s += m.s;
    acc.drained += (performance.now() - t) / 1000;
    for (const [group, sec] of Object.entries(cpuBetween(before, sampleCpu()))) acc.cpu[group] = (acc.cpu[group] ?? 0) + sec;
  }
  console.log(`(b) sustained c=8: decisions ${Math.round(d.n / d.s)}/s (${d.n} in ${d.s.toFixed(1)} s), no-op starts ${Math.round(b.n / b.s)}/s (${b.n} in ${b.s.toFixed(1)} s), ratio ${((d.n / d.s) / (b.n / b.s)).toFixed(2)}x (goal >= 0.8x)`);
  console.log(`    drained (each phase until its runs are done): decisions ${Math.round(d.n / d.drained)}/s (${d.drained.toFixed(1)} s), no-op workflows ${Math.round(b.n / b.drained)}/s (${b.drained.toFixed(1)} s), ratio ${((d.n / d.drained) / (b.n / b.drained)).toFixed(2)}x`);
  // Where the cycles went: CPU ms per decision (or per no-op start) by process, over the same phases.
  const perOp = (acc: typeof d) => Object.entries(acc.cpu).filter(([, s]) => s > 0).sort((x, y) => y[1] - x[1])
    .map(([g, s]) => `${g} ${((s * 1000) / acc.n).toFixed(1)}`).join(', ');
  console.log(`    CPU ms per decision: ${perOp(d)}; total ${((Object.values(d.cpu).reduce((x, y) => x + y, 0) * 1000) / d.n).toFixed(1)}`);
  console.log(`    CPU ms per no-op start: ${perOp(b)}; total ${((Object.values(b.cpu).reduce((x, y) => x + y, 0) * 1000) / b.n).toFixed(1)}`);
  }

  // (c) approve -> waiting long-poll vs a bare update round trip.
  const approveLat: number[] = [];
  const postLat: number[] = [];
  const updateLat: number[] = [];
  const approvalRound = async () => {
    const res = await api(asAgent, 'POST', '/v1/decisions', { agent: { id: 'bench-bot' }, action: { tool: 'deploy_tool', operation: 'Deploy', args: { n: (seq += 1) } } });
    if (res.body?.status !== 'pending_approval') throw new Error(`expected a pending decision: ${res.status} ${JSON.stringify(res.body)}`);
    const id: string = res.body.decision_id;
    // The round must be open before the approve is timed.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const list = await api(asApprover, 'GET', '/v1/approvals');
      if (list.body.items?.some((x: { decision_id: string }) => x.decision_id === id)) break;
      if (Date.now() > deadline) throw new Error(`approval round of ${id} never opened`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // And the run idle, as the bare side's workflow is before its update: the round shows in the inbox once its
    // events are appended, while the run may still be notifying the approvers (an activity, then an append in
    // a workflow task of its own); a query is answered only after a workflow task under way completes. An
    // approver answers seconds later, not during the notice.
    await client.workflow.getHandle(workflowIdFor('default', id)).query(statusQuery);
    let answered = 0;
    const poll = api(stack, 'GET', `/v1/decisions/${id}?wait=30`).then((r) => { answered = performance.now(); return r; });
    await new Promise((r) => setTimeout(r, 100)); // let the long-poll reach its wait
    const t = performance.now();
    const ok = await api(asApprover, 'POST', `/v1/decisions/${id}/approvals`, { verdict: 'approve' });
    postLat.push(performance.now() - t);
    if (ok.status !== 200) throw new Error(`approve failed: ${ok.status} ${JSON.stringify(ok.body)}`);
    const final = await poll;
    if (final.body?.status !== 'final' || final.body?.decision !== 'ALLOW') throw new Error(`long-poll answered ${JSON.stringify(final.body)}`);
    approveLat.push(answered - t);
  };
  const updateRound = async () => {
    const handle = await client.workflow.start(waitsForPoke, { taskQueue: noopQueue, workflowId: `bench-poke-${run}-${(seq += 1)}` });
    await handle.query('__stack_trace').catch(() => undefined); // first workflow task done: the handler is set
    const t = performance.now();
    await handle.executeUpdate(poke);
    updateLat.push(performance.now() - t);
    await handle.result();
  };
  if (parts.includes('c')) {
  await approvalRound();
  await updateRound();
  approveLat.length = 0;
  postLat.length = 0;
  updateLat.length = 0;
  for (let i = 0; i < approvalRounds; i++) {
    if (i % 2 === 0) { await approvalRound(); await updateRound(); } else { await updateRound(); await approvalRound(); }
  }
  console.log(`(c) approve -> long-poll answer n=${approvalRounds}: p50 ${fmt(pct(approveLat, 50))}, p99 ${fmt(pct(approveLat, 99))}`);
  console.log(`    (the approve POST itself answered: p50 ${fmt(pct(postLat, 50))})`);
  console.log(`    bare update round trip      n=${approvalRounds}: p50 ${fmt(pct(updateLat, 50))}, p99 ${fmt(pct(updateLat, 99))}`);
  console.log(`    ratio p50 ${(pct(approveLat, 50) / pct(updateLat, 50)).toFixed(2)}x (goal <= 1.5x)`);
  }

  await noopWorker.stop();
  await connection.close();

  // (d) worker start with the prebuilt bundle (an extra worker on the stack's task queue, stopped at once): the
  // prebuilt worker entry that `make up` runs with plain node, and the sources through tsx for comparison.
  // The worker logs its own start time and CPU time, which a busy machine distorts less than wall time.
  if (parts.includes('d')) {
    for (const [label, entry] of [['prebuilt (make up)', built('worker.mjs')], ['sources via tsx', 'services/worker/main.ts']] as const) {
      const starts: number[] = [];
      const cpu: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t = performance.now();
        const w = await startProcess('worker', entry, { ...stack.env, COUNTERSIGN_WORKFLOW_BUNDLE: bundle, COUNTERSIGN_LOG_LEVEL: 'info' }, /worker started/);
        starts.push(performance.now() - t);
        cpu.push(Number(/"start_cpu_ms":(\d+)/.exec(w.output())?.[1] ?? NaN));
        if (/bundling at start-up/.test(w.output())) throw new Error('the worker ignored the bundle (stale?)');
        await w.stop();
      }
      console.log(`(d) worker start, ${label} (spawn -> "worker started"), 3 runs: ${starts.map((s) => `${(s / 1000).toFixed(2)} s`).join(', ')}; median ${(pct(starts, 50) / 1000).toFixed(2)} s (goal < 3 s); CPU median ${(pct(cpu, 50) / 1000).toFixed(2)} s`);
    }
  }
} finally {
  await stack.stop();
}
