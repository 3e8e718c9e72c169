// Throughput with two API processes and two workers vs one of each, on the same machine, the same database,
// topic and task queue (one publisher throughout). A client at concurrency 8 asks for ALLOW decisions for 8 s per
// phase, spread round-robin over the APIs that are up; a phase ends when every decision it was answered has its
// receipt written (drained: the workers' share is counted, not left to the next phase). Phases: 1x1, 2x2, 2x2,
// 1x1 (the second API and worker are started once and left idle during 1x1 phases: only the first API takes
// requests, and the second worker is stopped and started again around the 1x1 phases).
// On a machine with 2 cores shared by every process (Postgres, Temporal, Kafka, the client), this measures the
// overhead of running two of each, not scaling: the ratio says how much running more instances costs, and
// the output says so.
//   eval "$(services/stack/stack.sh env)"; npx tsx bench/multi-instance.ts [seconds per phase] [rounds]
import { execFileSync } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { activateYaml, addPrincipal, api, freePort, ROOT, startProcess, startTestStack, type AppProcess } from '../test/int/harness.ts';

const seconds = Number(process.argv[2] ?? 8);
const rounds = Number(process.argv[3] ?? 1);
// This checkout's workflows, prebuilt beside this checkout (the shared data directory's bundle is not ours to replace).
const bundle = path.join(ROOT, '.data', 'bench', 'workflow-bundle.js');
const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: bench-multi, name: Multi-instance benchmark }
scope: { level: tenant }
rules:
  - name: reports
    match: { tool: report_tool }
    decision: ALLOW
    reason: reports are fine
`;

execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'services/worker/bundle.ts')], {
  cwd: ROOT, env: { ...process.env, COUNTERSIGN_WORKFLOW_BUNDLE: bundle }, stdio: ['ignore', 'ignore', 'inherit'],
});
const stack = await startTestStack({ COUNTERSIGN_WORKFLOW_BUNDLE: bundle, COUNTERSIGN_LOG_LEVEL: 'warn', COUNTERSIGN_RATE_LIMIT: '1000000' }, { workerEntry: path.join(path.dirname(bundle), 'worker.mjs') });
let api2: AppProcess | undefined;
let worker2: AppProcess | undefined;
try {
  await activateYaml(stack, POLICY);
  const agent = await addPrincipal(stack, { name: 'bench bot', kind: 'agent', roles: ['agent'] });
  const port = await freePort();
  api2 = await startProcess('api-2', 'services/api/main.ts', { ...stack.env, COUNTERSIGN_PORT: String(port), COUNTERSIGN_LOG_LEVEL: 'info' }, /api listening/);
  const urls = [stack.url, `http://127.0.0.1:${port}`];

  let seq = 0;
  const receipts = async () => Number((await stack.db.query(`SELECT count(*) AS n FROM events WHERE type = 'ReceiptIssued'`)).rows[0].n);
  const phase = async (apis: number) => {
    const receiptsBefore = await receipts();
    const t = performance.now();
    const end = t + seconds * 1000;
    let n = 0;
    await Promise.all(Array.from({ length: 8 }, async (_, lane) => {
      for (let i = lane; performance.now() < end; i += 8) {
        const res = await api({ url: urls[i % apis]!, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'bench-bot' }, action: { tool: 'report_tool', operation: 'Read', args: { n: (seq += 1) } } });
        if (res.status !== 200 || res.body.decision !== 'ALLOW') throw new Error(`unexpected answer ${res.status} ${JSON.stringify(res.body)}`);
        n += 1;
      }
    }));
    while ((await receipts()) - receiptsBefore < n) await new Promise((r) => setTimeout(r, 20));
    return { n, s: (performance.now() - t) / 1000 };
  };
  // Warm-up of both APIs and the first worker.
  await phase(2);
  const one = { n: 0, s: 0 };
  const two = { n: 0, s: 0 };
  const order = Array.from({ length: rounds }, () => ['1x1', '2x2', '2x2', '1x1'] as const).flat();
  const loads: string[] = [];
  for (const which of order) {
    if (which === '2x2' && !worker2) worker2 = await stack.startWorker();
    if (which === '1x1' && worker2) { await worker2.stop(); worker2 = undefined; }
    const m = await phase(which === '2x2' ? 2 : 1);
    const acc = which === '2x2' ? two : one;
    acc.n += m.n;
    acc.s += m.s;
    loads.push(`${which} ${Math.round(m.n / m.s)}/s (load ${loadavg()[0]!.toFixed(1)})`);
    process.stderr.write(`${which}: ${m.n} decisions in ${m.s.toFixed(1)} s\n`);
  }
  console.log(`machine        : ${availableParallelism()} cores shared by every process (Postgres, Temporal, Kafka, APIs, workers, publisher, this client); load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  console.log(`1 API, 1 worker: ${Math.round(one.n / one.s)} decisions/s (${one.n} in ${one.s.toFixed(1)} s, drained)`);
  console.log(`2 APIs, 2 workers: ${Math.round(two.n / two.s)} decisions/s (${two.n} in ${two.s.toFixed(1)} s, drained)`);
  console.log(`phases         : ${loads.join(', ')}`);
  console.log(`ratio 2x2/1x1  : ${((two.n / two.s) / (one.n / one.s)).toFixed(2)}x. On ${availableParallelism()} cores this measures the overhead of two of each, not scaling: every process already shares the same cores, so a second API and worker add no CPU, only coordination (two pollers on one task queue, two connection pools).`);
} finally {
  await Promise.all([api2?.stop(), worker2?.stop()]);
  await stack.stop();
}
