import type { Command } from 'commander';
import { registerPolicyReadCommands } from './policy-read.ts';
import { registerPolicyLifecycleCommands } from './policy-lifecycle.ts';
import { DECISIONS, type Decision } from '../../../schemas/decision-kind.ts';
import { circuitBreakerPack } from '../../policy/builtin-pack.ts';
import { assembleSnapshot } from '../../policy/compile.ts';
import { interpretations } from '../../policy/interpret.ts';
import { formatPolicyError, type PolicyError } from '../../policy/policy-error.ts';
import { checkPolicyText } from '../../policy/parse-text.ts';
import { simulate, type SimulationResult } from '../../policy/simulate.ts';
import { runCase } from '../../policy/test-suite.ts';
import type { CompiledPolicy } from '../../policy/snapshot.ts';
import { loadDataFile, loadPolicyFile, loadSuiteFile, readText } from './policy-files.ts';
import { approvalRoute, type RouteLevel, type RouteRequirement } from '../../decisions/approval-requirements.ts';
import { run, transport } from './remote.ts';
import { isExportFile, validateDraftRemote, validateExportFile } from './policy-export-check.ts';

/** `countersign policy …`: owned by the policy engine (services/policy). Exit codes follow EXIT in main.ts. */
const FAILED = 1;
const USAGE = 2;

const out = (line: string) => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);

function printErrors(errors: PolicyError[]): void {
  for (const e of errors) out(formatPolicyError(e));
}

function summary(file: string, policy: CompiledPolicy): string {
  const nl = policy.rules.filter((r) => r.text !== undefined).length;
  const lists = [policy.models ? 'models' : '', policy.tools ? 'tools' : ''].filter((s) => s !== '').join(', ');
  return `${file}: ok: policy ${policy.policy_id} (${policy.level}${policy.agent ? ` ${policy.agent}` : ''}), ${policy.rules.length} rule${policy.rules.length === 1 ? '' : 's'}${nl > 0 ? ` (${nl} natural-language)` : ''}${lists ? `, ${lists} lists` : ''}`;
}

function validate(file: string): number {
  const t = readText(file);
  if (!t.ok) {
    printErrors(t.errors);
    return FAILED;
  }
  const r = checkPolicyText(t.text, file);
  if (!r.ok) {
    printErrors(r.errors);
    return FAILED;
  }
  out(summary(file, r.policy));
  return 0;
}

function printResult(r: SimulationResult, route = true): void {
  out(`decision:      ${r.decision} (${r.status})`);
  out(`reason:        ${r.reason}`);
  out(`matched_rule:  ${r.matched_rule ?? '(none)'}`);
  for (const m of r.matched_rules) out(`  matched       ${m.policy_id} v${m.version} ${m.rule} -> ${m.decision}`);
  if (Object.keys(r.constraints).length > 0) out(`constraints:   ${JSON.stringify(r.constraints)}`);
  if (r.approval !== undefined) out(`approval:      ${JSON.stringify(r.approval)}`);
  out(`snapshot_hash: ${r.snapshot_hash}`);
  out(`now:           ${r.now}`);
  if (route && r.decision === 'REQUIRE_APPROVAL') printRoute(approvalRoute(r, new Date(r.now)));
}

type PrintedLevel = RouteLevel & { notified?: Array<{ principal_id: string; channels: string[]; on_behalf_of?: string[] }> };

/** Who would be asked: each requirement (every one must approve), its levels, and with --remote the people and their channels. */
function printRoute(route: Array<Omit<RouteRequirement, 'levels'> & { levels: PrintedLevel[] }>): void {
  out(`approval route (${route.length === 1 ? 'one requirement' : `${route.length} requirements, every one must approve`}):`);
  for (const q of route) {
    out(`  requirement ${q.id}: ${q.policy_id} v${q.version} ${q.rule}`);
    for (const l of q.levels) {
      out(`    level ${l.level + 1}: ${l.groups.join(', ')} (quorum ${l.quorum}${l.eligible_groups.length > l.groups.length ? `; ${l.eligible_groups.join(', ')} may answer` : ''}) ${l.starts_at} -> ${l.deadline}`);
      for (const p of l.notified ?? []) out(`      notifies ${p.principal_id} by ${p.channels.join(', ')}${p.on_behalf_of ? ` (for ${p.on_behalf_of.join(', ')})` : ''}`);
      if (l.notified?.length === 0) out('      notifies nobody: no enabled approver is in these groups');
    }
    out(`    then ${q.on_timeout} at ${q.final_deadline}`);
  }
}

/** The API's simulation against the tenant's active set (the policy files as drafts): the route with the people it would notify. */
async function simulateRemote(opts: { policy?: string[]; request: string; at?: string; json?: boolean }): Promise<number> {
  const req = loadDataFile(opts.request);
  const docs: unknown[] = [];
  const errors: PolicyError[] = req.ok ? [] : req.errors;
  for (const f of opts.policy ?? []) {
    const d = loadDataFile(f);
    if (d.ok) docs.push(d.value);
    else errors.push(...d.errors);
  }
  if (errors.length > 0 || !req.ok) {
    printErrors(errors);
    return FAILED;
  }
  const value = req.value as Record<string, unknown>;
  const isBody = typeof value === 'object' && value !== null && ('job' in value || ('request' in value && !('action' in value)));
  const body: Record<string, unknown> = { ...(isBody ? value : { request: value }), ...(opts.at ? { at: opts.at } : {}), ...(docs.length ? { policy: docs.length === 1 ? docs[0] : docs } : {}) };
  await run(async () => {
    const r = await transport().request<SimulationResult & { approval_route?: Parameters<typeof printRoute>[0] }>('POST', '/v1/policy/simulate', body);
    if (opts.json === true) {
      out(JSON.stringify(r, null, 2));
      return;
    }
    const { approval_route: route, ...rest } = r;
    printResult(rest, false);
    if (route) printRoute(route);
  });
  // run() reports a failure itself and sets the exit code.
  return Number(process.exitCode ?? 0);
}

function simulateCommand(opts: { policy: string[]; request: string; at?: string; json?: boolean; facts?: string; defaultDecision?: string; circuitBreakers?: boolean }): number {
  if (opts.defaultDecision !== undefined && !(DECISIONS as readonly string[]).includes(opts.defaultDecision)) {
    err(`countersign: --default-decision must be one of ${DECISIONS.join(', ')}`);
    return USAGE;
  }
  const errors: PolicyError[] = [];
  const policies: CompiledPolicy[] = [];
  for (const f of opts.policy) {
    const p = loadPolicyFile(f);
    if (p.ok) policies.push(p.policy);
    else errors.push(...p.errors);
  }
  const req = loadDataFile(opts.request);
  if (!req.ok) errors.push(...req.errors);
  let facts: unknown;
  if (opts.facts !== undefined) {
    const f = loadDataFile(opts.facts);
    if (f.ok) facts = f.value;
    else errors.push(...f.errors);
  }
  if (errors.length > 0 || !req.ok) {
    printErrors(errors);
    return FAILED;
  }
  const defaultDecision = (opts.defaultDecision ?? 'DENY') as Decision;
  const active = assembleSnapshot(opts.circuitBreakers === false ? policies : [...policies, circuitBreakerPack()], defaultDecision);
  // A request file may be a bare decision request, or a simulate body ({ request | job, at, facts }).
  const value = req.value as Record<string, unknown>;
  const isBody = typeof value === 'object' && value !== null && ('job' in value || ('request' in value && !('action' in value)));
  const body: Record<string, unknown> = isBody ? { ...value } : { request: value };
  if (opts.at !== undefined) body['at'] = opts.at;
  if (facts !== undefined) body['facts'] = facts;
  const r = simulate({ body, active, now: new Date(), defaultDecision });
  if (!r.ok) {
    printErrors(r.errors.map((e) => ({ ...e, file: opts.request })));
    return FAILED;
  }
  const interpreted = policies.flatMap(interpretations);
  if (opts.json === true) out(JSON.stringify(interpreted.length > 0 ? { ...r.result, interpreted } : r.result, null, 2));
  else printResult(r.result);
  return 0;
}

function testCommand(files: string[]): number {
  let passed = 0;
  let failed = 0;
  for (const file of files) {
    const s = loadSuiteFile(file);
    if (!s.ok) {
      printErrors(s.errors);
      failed++;
      continue;
    }
    for (const tc of s.suite.cases) {
      const r = runCase(s.snapshot, s.suite, tc);
      if (r.passed) {
        passed++;
        out(`PASS ${file}: ${r.name}`);
      } else {
        failed++;
        out(`FAIL ${file}: ${r.name}`);
        for (const d of r.diffs) out(`  ${d.replaceAll('\n', '\n  ')}`);
      }
    }
  }
  out(`${passed} passed, ${failed} failed`);
  return failed > 0 ? FAILED : 0;
}

export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('Write, check and simulate policies.');
  registerPolicyLifecycleCommands(policy);
  registerPolicyReadCommands(policy);
  policy
    .command('validate')
    .description('Check a policy file (YAML or JSON; every error as FILE:LINE:COL message, exit 1), a signed export (schema, hash and signature), or with --draft ID validate a draft against recent runs.')
    .argument('[file]')
    .option('--file <file>', 'the file to check (same as the argument)')
    .option('--keys <url|file|dir>', 'public keys for a signed export: a URL (…/v1/keys), a JWKS file or a keyring directory; default: the API you are logged in to, else the local keyring')
    .option('--draft <id>', "validate policy ID's draft against the tenant's recent runs (remote)")
    .option('--json', 'print JSON (exports and --draft)')
    .option('--platform', "with --draft: a platform policy's draft, against every tenant's recent runs (platform admins)")
    .action(async (file: string | undefined, opts: { file?: string; keys?: string; draft?: string; json?: boolean; platform?: boolean }) => {
      if (opts.draft !== undefined) {
        await validateDraftRemote(opts.draft, opts.json, opts.platform === true);
        return;
      }
      const target = opts.file ?? file;
      if (target === undefined) {
        err('countersign: policy validate needs FILE, --file FILE or --draft ID');
        process.exitCode = USAGE;
        return;
      }
      process.exitCode = isExportFile(target) ? await validateExportFile(target, opts) : validate(target);
    });
  policy
    .command('simulate')
    .description('Evaluate a request against policy files, without starting anything.')
    .option('--policy <file...>', 'policy file (repeatable); required unless --remote')
    .requiredOption('--request <file>', 'decision request (JSON or YAML), or a simulate body { request | job, at, facts }')
    .option('--remote', 'ask the API you are logged in to: its active policies (the files as drafts), and the people each approval level would notify')
    .option('--at <iso-8601>', 'evaluate as of this instant (default: now)')
    .option('--facts <file>', 'facts for limit rules: { counters: { key: n } }')
    .option('--default-decision <decision>', 'decision when no rule matches (default DENY)')
    .option('--no-circuit-breakers', 'leave out the built-in circuit-breaker pack')
    .option('--json', 'print the decision result as JSON')
    .action(async (opts: { policy?: string[]; request: string; at?: string; json?: boolean; facts?: string; defaultDecision?: string; circuitBreakers?: boolean; remote?: boolean }) => {
      if (opts.at !== undefined && Number.isNaN(Date.parse(opts.at))) {
        err(`countersign: --at must be an ISO-8601 instant, got ${opts.at}`);
        process.exitCode = USAGE;
        return;
      }
      if (opts.remote === true) {
        process.exitCode = await simulateRemote(opts);
        return;
      }
      if (opts.policy === undefined) {
        err("error: required option '--policy <file...>' not specified (or use --remote)");
        process.exitCode = USAGE;
        return;
      }
      process.exitCode = simulateCommand({ ...opts, policy: opts.policy });
    });
  policy
    .command('test')
    .description('Run YAML policy test suites (cases of request, at, facts and expected decision).')
    .argument('<files...>')
    .action((files: string[]) => {
      process.exitCode = testCommand(files);
    });
}
