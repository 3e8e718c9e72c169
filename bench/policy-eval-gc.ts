// Where policy evaluation's tail comes from: how much one evaluation allocates, how many young-generation
// collections (scavenges) that causes, and whether the p99 of bench/policy-eval.ts's batch timing moves when
// collections are made rare. Countersign's evaluate() and the hand-written JS floor, 64 rules by default.
//   npx tsx bench/policy-eval-gc.ts [rules=64] [main checkout to compare, e.g. /work/main]
// Each figure comes from a child process (so V8 flags apply to it alone):
// - allocation: 1,000,000 evaluations under --trace-gc with the young generation fixed at 16 MiB per
//   semi-space: bytes per evaluation ~= scavenges x 16 MiB / 1,000,000 (an estimate: survivors are left out);
// - timing: the bench's interleaved batches of 64 (median and p99 ns per evaluation), once at V8's default
//   young generation and once at 256 MiB per semi-space (scavenges ~16x rarer), scavenges counted with --trace-gc.
// With a second argument the same is measured for that checkout's services/policy in the same run.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as RulesLib from './lib/policy-eval-rules.ts';
import type { ourSnapshot } from './lib/policy-eval-rules.ts';

const n = Number(process.argv[2] ?? 64);
const mode = process.argv[3];

type CompileFn = Parameters<typeof ourSnapshot>[1];
type Evaluate = (snapshot: unknown, request: unknown, facts: object, now: Date) => { decision: string };

async function engines(root: string): Promise<Array<{ name: string; run: (i: number) => number }>> {
  const rulesLib = (await import(pathToFileURL(path.join(import.meta.dirname, 'lib/policy-eval-rules.ts')).href)) as typeof RulesLib;
  const policy = (await import(pathToFileURL(path.join(root, 'services/policy/index.ts')).href)) as { evaluate: Evaluate; compile: CompileFn };
  const rules = rulesLib.ruleSet(n);
  const qs = rulesLib.requests(n, 256);
  const now = new Date('2025-01-08T12:00:00Z');
  const snapshot = rulesLib.ourSnapshot(rules, policy.compile);
  const hand = rulesLib.handRules(rules);
  return [
    { name: 'countersign', run: (i) => policy.evaluate(snapshot, qs[i & 255]!, {}, now).decision.length },
    { name: 'hand-written JS', run: (i) => rulesLib.handEvaluate(hand, qs[i & 255]!).decision.length },
  ];
}

const MARK = '--- measured ---';

if (mode === 'alloc' || mode === 'timing') {
  const root = process.argv[4]!;
  const which = process.argv[5];
  const list = (await engines(root)).filter((e) => which === undefined || e.name === which);
  let sink = 0;
  for (const e of list) for (let i = 0; i < 50_000; i++) sink += e.run(i); // warm-up (JIT)
  if (mode === 'alloc') {
    console.log(MARK);
    for (let i = 0; i < 1_000_000; i++) sink += list[0]!.run(i);
    console.log(MARK);
  } else {
    const samples = new Map<string, number[]>(list.map((e) => [e.name, []]));
    console.log(MARK);
    for (let round = 0; round < 4000; round++) {
      const start = (round * 37) & 255;
      for (let k = 0; k < list.length; k++) {
        const e = list[(k + round) % list.length]!;
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < 64; i++) sink += e.run(start + i);
        samples.get(e.name)!.push(Number(process.hrtime.bigint() - t0) / 64);
      }
    }
    console.log(MARK);
    const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
    const out: Record<string, { median: number; p99: number }> = {};
    for (const [name, s] of samples) out[name] = { median: pct(s, 50), p99: pct(s, 99) };
    console.log(`RESULT ${JSON.stringify(out)}`);
  }
  if (sink === -1) console.log('');
  process.exit(0);
}

function child(args: string[], flags: string[]): { scavenges: number; marks: number; result: Record<string, { median: number; p99: number }> | null } {
  const r = spawnSync(process.execPath, [...process.execArgv, '--trace-gc', ...flags, process.argv[1]!, String(n), ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const lines = r.stdout.split('\n');
  let inside = false;
  let scavenges = 0;
  let marks = 0;
  let result = null;
  for (const line of lines) {
    if (line === MARK) inside = !inside;
    else if (inside && /Scavenge/.test(line)) scavenges += 1;
    else if (inside && /Mark-Compact|Mark-sweep/i.test(line)) marks += 1;
    else if (line.startsWith('RESULT ')) result = JSON.parse(line.slice(7)) as Record<string, { median: number; p99: number }>;
  }
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr.slice(0, 2000)}`);
  return { scavenges, marks, result };
}

const here = path.resolve(import.meta.dirname, '..');
const roots: Array<[string, string]> = [['this checkout', here]];
if (process.argv[3] !== undefined) roots.push([process.argv[3], path.resolve(process.argv[3])]);

console.log(`policy evaluation, ${n} rules: allocation, collections and the tail (node ${process.version})`);
for (const [label, root] of roots) {
  console.log(`\n${label} (${root})`);
  for (const name of ['countersign', 'hand-written JS']) {
    const a = child(['alloc', root, name], ['--min-semi-space-size=16', '--max-semi-space-size=16']);
    console.log(`  ${name.padEnd(16)} ~${Math.round((a.scavenges * 16 * 1024 * 1024) / 1_000_000)} bytes/evaluation (${a.scavenges} scavenges, ${a.marks} mark-compacts per 1,000,000)`);
  }
  for (const [what, flags] of [['default young generation', []], ['256 MiB semi-spaces', ['--min-semi-space-size=256', '--max-semi-space-size=256']]] as Array<[string, string[]]>) {
    const t = child(['timing', root], flags);
    const c = t.result!['countersign']!;
    const h = t.result!['hand-written JS']!;
    console.log(`  timing, ${what} (${t.scavenges} scavenges in the window): countersign median ${c.median.toFixed(0)} ns, p99 ${c.p99.toFixed(0)} ns; hand-written median ${h.median.toFixed(0)}, p99 ${h.p99.toFixed(0)}; ratio median ${(c.median / h.median).toFixed(2)}x, p99 ${(c.p99 / h.p99).toFixed(2)}x`);
  }
}
