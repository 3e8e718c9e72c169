// MCP gateway benchmark, on a whole test stack (API, worker, publisher as child processes; own database, topic
// and task queue) against the shared Temporal, Kafka and Postgres:
//   (a) an ALLOW tools/call through the gateway (the official SDK client over stdio -> `countersign mcp gateway`
//       -> the payments upstream over stdio) vs the same work done directly (POST /v1/decisions, then the SDK
//       client calling the same upstream, spawned on its own), N sequential calls each, interleaved: p50/p99
//       and their ratios (goal p50 <= 1.15x). Twice: with output_rules "auto" (the default; the policy has no
//       output rule, so the outcome is reported after the answer) and "enforce" (every result waits for the
//       run's outcome check, an update round trip on the run).
//   (b) a burst of 200 concurrent calls through one gateway: every one answered, none forwarded twice (the
//       upstream's own log of what it ran).
//   eval "$(services/stack/stack.sh env)"; npx tsx bench/mcp-gateway.ts [N] [burst]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { activateYaml, addPrincipal, api, ROOT, startTestStack } from '../test/int/harness.ts';
import { gatewayFiles, PAYMENTS_SERVER, stdioGateway } from '../test/int/mcp-gateway-harness.ts';

const N = Number(process.argv[2] ?? 200);
const BURST = Number(process.argv[3] ?? 200);
const run = randomBytes(4).toString('hex');
const bundle = path.join(process.env['COUNTERSIGN_DATA_DIR'] ?? path.join(ROOT, '.data'), 'workflow-bundle.js');

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: bench-mcp, name: MCP gateway benchmark }
scope: { level: tenant }
rules:
  - name: refunds
    match: { tool: payments, operation: refund }
    decision: ALLOW
    reason: refunds are fine here
`;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const ms = (x: number) => `${x.toFixed(2)} ms`;

execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'services/worker/bundle.ts')], {
  cwd: ROOT, env: { ...process.env, COUNTERSIGN_WORKFLOW_BUNDLE: bundle }, stdio: ['ignore', 'ignore', 'inherit'],
});
const stack = await startTestStack({ COUNTERSIGN_WORKFLOW_BUNDLE: bundle, COUNTERSIGN_LOG_LEVEL: 'warn', COUNTERSIGN_RATE_LIMIT: '1000000' }, { workerEntry: path.join(path.dirname(bundle), 'worker.mjs') });
const closers: Array<() => Promise<void>> = [];
try {
  await activateYaml(stack, POLICY);
  // Test stacks share one Temporal and the tenant `default`; the gateway's keys are derived from the call, so
  // each run acts as an agent of its own.
  const agent = `pay-bot-${run}`;
  const bot = await addPrincipal(stack, { name: agent, kind: 'agent', roles: ['agent'] });
  const env = { COUNTERSIGN_URL: stack.url, COUNTERSIGN_API_KEY: bot.key };

  // The direct path: the same upstream, spawned on its own, and the decision asked over HTTP first.
  const direct = gatewayFiles({ agent });
  const directTransport = new StdioClientTransport({ command: process.execPath, args: ['--import', 'tsx', PAYMENTS_SERVER], env: { PATH: process.env['PATH'] ?? '', PAYMENTS_LOG: direct.log }, stderr: 'inherit' });
  const directClient = new Client({ name: 'bench-direct', version: '1' });
  await directClient.connect(directTransport);
  closers.push(() => directClient.close());
  const directCall = async (order: string) => {
    const d = await api({ url: stack.url, key: bot.key }, 'POST', '/v1/decisions', {
      agent: { id: agent }, action: { tool: 'payments', operation: 'refund', args: { order, amount: 10 } }, context: { order, amount: 10 }, idempotency_key: `bench/${run}/direct/${order}`,
    });
    if (d.body.decision !== 'ALLOW') throw new Error(`direct: ${JSON.stringify(d.body)}`);
    const r = (await directClient.callTool({ name: 'refund', arguments: { order, amount: 10 } })) as CallToolResult;
    if (r.isError) throw new Error('direct call failed');
  };

  const gateways: Record<string, { call: (order: string) => Promise<void>; executed: () => Array<{ args: Record<string, unknown> }> }> = {};
  for (const mode of ['auto', 'enforce'] as const) {
    const files = gatewayFiles({ agent, output_rules: mode, register_catalog: false });
    const gw = await stdioGateway(files.config, env);
    closers.push(gw.close);
    gateways[mode] = {
      executed: files.executed,
      call: async (order: string) => {
        const r = (await gw.client.callTool({ name: 'refund', arguments: { order, amount: 10 } })) as CallToolResult;
        if (r.isError) throw new Error(`gateway (${mode}): ${JSON.stringify(r.content)}`);
      },
    };
  }

  // (a) interleaved: direct, enforce, report, one call each per round; 20 unmeasured rounds first.
  const times: Record<string, number[]> = { direct: [], auto: [], enforce: [] };
  const variants: Array<[string, (order: string) => Promise<void>]> = [['direct', directCall], ['auto', gateways['auto']!.call], ['enforce', gateways['enforce']!.call]];
  for (let i = -20; i < N; i++) {
    for (const [name, call] of i % 2 === 0 ? variants : [...variants].reverse()) {
      const t0 = performance.now();
      await call(`${name}-${run}-${i}`);
      if (i >= 0) times[name]!.push(performance.now() - t0);
    }
  }
  console.log(`(a) ALLOW tools/call, N=${N} sequential, interleaved`);
  for (const name of ['direct', 'auto', 'enforce']) console.log(`    ${name.padEnd(8)} p50 ${ms(pct(times[name]!, 50))}  p99 ${ms(pct(times[name]!, 99))}`);
  for (const name of ['auto', 'enforce']) {
    console.log(`    gateway (${name}) / direct: p50 ${(pct(times[name]!, 50) / pct(times['direct']!, 50)).toFixed(2)}x  p99 ${(pct(times[name]!, 99) / pct(times['direct']!, 99)).toFixed(2)}x  (goal p50 <= 1.15x)`);
  }

  // (b) a burst through one gateway (the default mode).
  const gw = gateways['auto']!;
  const before = gw.executed().length;
  const orders = Array.from({ length: BURST }, (_, i) => `burst-${run}-${i}`);
  const t0 = performance.now();
  const results = await Promise.allSettled(orders.map((o) => gw.call(o)));
  const elapsed = performance.now() - t0;
  // Every call gets an answer: the tool's result, or a gateway refusal (failing closed when the API was too slow).
  const allowed = results.filter((r) => r.status === 'fulfilled').length;
  const refusals = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => String(r.reason));
  const failClosed = refusals.filter((m) => /failing closed/.test(m)).length;
  const ran = gw.executed().slice(before).map((e) => String(e.args['order']));
  const counts = new Map<string, number>();
  for (const o of ran) counts.set(o, (counts.get(o) ?? 0) + 1);
  const twice = [...counts.values()].filter((c) => c > 1).length;
  console.log(`(b) burst of ${BURST} concurrent calls in ${ms(elapsed)}: ${allowed + failClosed}/${BURST} answered (${allowed} forwarded and answered, ${failClosed} refused failing closed), ${counts.size} distinct forwarded, ${twice} forwarded twice${refusals.length > failClosed ? `; other failures: ${refusals.filter((m) => !/failing closed/.test(m)).slice(0, 3).join(' | ')}` : ''}`);
} finally {
  for (const c of closers) await c().catch(() => undefined);
  await stack.stop();
}
