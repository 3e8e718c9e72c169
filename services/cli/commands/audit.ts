import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import pg from 'pg';
import { StoredEvent } from '../../../schemas/events.ts';
import { SignedReceipt } from '../../../schemas/receipt.ts';
import { DEFAULT_RECEIPT_GRACE_MS, Replay, type ReplayReport } from '../../audit/replay.ts';
import { replayMetricsFile } from '../../audit/replay-metrics.ts';
import { decisionIdOf, whichPolicy, type WhichPolicy } from '../../audit/which-policy.ts';
import { loadConfig } from '../../config.ts';
import { durationSeconds } from '../../../schemas/duration.ts';
import { readAll, readStream } from '../../events/read-events.ts';
import { currentStreamId, runStreamId } from '../../events/stream-ids.ts';
import { createKafkaSource } from '../../publisher/kafka.ts';
import { EXIT } from '../exit-codes.ts';
import { loadKeys, registerAuditVerify } from './audit-verify.ts';

type ReplayOptions = { from: 'kafka' | 'postgres'; tenant?: string; since?: string; json?: boolean; keys?: string; receipts?: string; anchor?: string; receiptGrace?: string; metricsFile?: string };
type WhichPolicyOptions = { from: 'kafka' | 'postgres'; json?: boolean };

/**
 * A connection that sees every tenant's rows: the `audit` system scope of row-level security (migration 0002),
 * for this session only. The auditor reads, never writes.
 */
async function auditConnection(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`SELECT set_config('countersign.system', 'audit', false)`);
  return client;
}

/** `countersign audit …`: the auditor's tools (services/audit). */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('Rebuild and verify receipts and policy chains from the log.');

  audit
    .command('replay')
    .description('Rebuild every receipt and policy version chain from one source alone and verify them; exit 1 on any divergence.')
    .requiredOption('--from <source>', 'kafka or postgres')
    .option('--tenant <id>', 'only this tenant')
    .option('--since <iso>', 'only runs that started at or after this time')
    .option('--keys <url|file|dir>', 'public keys to verify signatures (default: the local keyring)')
    .option('--receipts <file>', 'also write the rebuilt signed receipts here, one JSON per line')
    .option('--anchor <file>', 'receipts handed out earlier (one signed receipt JSON per line): each must be rebuilt identically')
    .option('--receipt-grace <duration>', 'a final run must have its receipt once this has passed (e.g. 10m, 0s)', '10m')
    .option('--json', 'print the report as JSON')
    .option('--metrics-file <file>', 'write the progress as Prometheus metrics to this file while replaying (records, events/s, done), for node_exporter\'s textfile collector')
    .action(async (opts: ReplayOptions) => {
      process.exitCode = await runReplay(opts);
    });

  audit
    .command('which-policy')
    .description('The policy ids, versions and snapshot hash that decided a run.')
    .argument('<run-id>', 'decision id (dec_…) or run stream id (run-dec_…)')
    .option('--from <source>', 'postgres or kafka', 'postgres')
    .option('--json', 'print the answer as JSON')
    .action(async (runId: string, opts: WhichPolicyOptions) => {
      process.exitCode = await runWhichPolicy(runId, opts);
    });

  registerAuditVerify(audit);
}

async function runReplay(opts: ReplayOptions): Promise<number> {
  if (opts.from !== 'kafka' && opts.from !== 'postgres') {
    process.stderr.write('countersign audit replay: --from must be kafka or postgres\n');
    return EXIT.usage;
  }
  const since = opts.since ? new Date(opts.since) : undefined;
  if (since && Number.isNaN(since.getTime())) {
    process.stderr.write(`countersign audit replay: --since ${opts.since} is not an ISO-8601 time\n`);
    return EXIT.usage;
  }
  let graceMs = DEFAULT_RECEIPT_GRACE_MS;
  if (opts.receiptGrace !== undefined) {
    const ms = parseGraceMs(opts.receiptGrace);
    if (ms === null) {
      process.stderr.write(`countersign audit replay: --receipt-grace ${opts.receiptGrace} is not a duration (e.g. 10m, 30s, 0s)\n`);
      return EXIT.usage;
    }
    graceMs = ms;
  }
  let anchors: SignedReceipt[] = [];
  if (opts.anchor) {
    try {
      anchors = readFileSync(opts.anchor, 'utf8').split('\n').filter((l) => l.trim()).map((l, i) => {
        const parsed = SignedReceipt.safeParse(JSON.parse(l));
        if (!parsed.success) throw new Error(`line ${i + 1}: not a signed receipt`);
        return parsed.data;
      });
    } catch (err) {
      process.stderr.write(`countersign audit replay: --anchor ${opts.anchor}: ${err instanceof Error ? err.message : String(err)}\n`);
      return EXIT.usage;
    }
  }
  const env = process.env as Record<string, string | undefined>;
  const keys = await loadKeys(opts.keys, { env, fetch, stdout: (s: string) => process.stdout.write(s), stderr: (s: string) => process.stderr.write(s) })
    .then((k) => k.set)
    .catch((err: unknown) => {
      process.stderr.write(`warning: receipt signatures not checked: ${err instanceof Error ? err.message : String(err)}\n`);
      return null;
    });
  const replay = new Replay({ keys, tenantId: opts.tenant, since, receiptGraceMs: graceMs, anchors });
  const bar = !opts.json && process.stderr.isTTY ? new cliProgress.SingleBar({ format: 'replay {bar} {value} records', stream: process.stderr }, cliProgress.Presets.shades_classic) : null;
  bar?.start(0, 0);
  let n = 0;
  const progress = opts.metricsFile ? replayMetricsFile(opts.metricsFile, opts.from) : null;
  const tick = () => {
    n += 1;
    progress?.record();
    if (bar && n % 500 === 0) { bar.setTotal(n); bar.update(n); }
  };
  try {
    if (opts.from === 'kafka') {
      const config = loadConfig({ DATABASE_URL: 'postgres://unused/unused', ...env });
      const source = createKafkaSource({ ...config.kafka, topic: config.COUNTERSIGN_KAFKA_TOPIC, clientId: 'countersign-audit' });
      await source.readToEnd((r) => { replay.add({ value: r.value, where: `kafka:${r.partition}@${r.offset}` }); tick(); });
    } else {
      const config = loadConfig();
      const db = await auditConnection(config.DATABASE_URL);
      try {
        // raw: hashes cover the stored form; Replay upcasts after checking them.
        for await (const e of readAll(db, { tenantId: opts.tenant, raw: true })) { replay.add({ value: JSON.stringify(e), where: `postgres:${e.position}` }); tick(); }
      } finally {
        await db.end();
      }
    }
  } catch (err) {
    bar?.stop();
    progress?.stop();
    process.stderr.write(`countersign audit replay: cannot read ${opts.from}: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.unavailable;
  }
  bar?.update(n);
  bar?.stop();
  const report = replay.finish();
  await progress?.finish(report.divergences.length);
  if (opts.receipts) writeFileSync(opts.receipts, report.receipts.map((r) => JSON.stringify(r)).join('\n') + (report.receipts.length ? '\n' : ''));
  process.stdout.write(opts.json ? `${JSON.stringify(report)}\n` : humanReport(report, opts.from));
  return report.divergences.length ? EXIT.failed : EXIT.ok;
}

function humanReport(r: ReplayReport, from: string): string {
  const lines = [];
  for (const s of r.receipts) {
    const rc = s.receipt;
    lines.push(`receipt ${rc.decision_id}  ${rc.decision.padEnd(22)} ${rc.status.padEnd(16)} rule=${rc.matched_rule ?? '-'}  snapshot=${rc.snapshot_hash.slice(0, 19)}…  key=${s.signature.key_id}`);
  }
  for (const [id, versions] of Object.entries(r.policies)) {
    const chain = r.policy_chains[id];
    if (!chain) {
      lines.push(`policy  ${id}  versions ${versions.map((v) => `v${v.version}`).join(' -> ')}`);
      continue;
    }
    // The version chain with its lineage: who activated each version, who approved it, what it came from.
    const version = (v: (typeof chain.versions)[number]) => {
      const how = [`by ${v.activated_by}`];
      if (v.approved_by) how.push(`approved by ${v.approved_by}`);
      if (v.rolled_back_to !== null) how.push(`rollback to v${v.rolled_back_to}`);
      if (v.cloned_from !== null) how.push(`cloned from v${v.cloned_from}`);
      if (v.imported) how.push('imported');
      return `v${v.version} (${how.join(', ')})`;
    };
    const open = chain.reviews.filter((x) => x.status === 'open').length;
    const d = chain.draft;
    const draft = d ? `  draft v${d.version}${d.imported ? ' (imported)' : ''}${d.cloned_from !== null ? ` (cloned from v${d.cloned_from})` : ''}` : '';
    lines.push(`policy  ${id}  ${chain.status}, active ${chain.active_version === null ? '-' : `v${chain.active_version}`}  versions ${chain.versions.map(version).join(' -> ') || '-'}${draft}${open ? `  (${open} review open)` : ''}`);
  }
  for (const [tenant, m] of Object.entries(r.memberships ?? {})) {
    const disabled = m.members.filter((x) => x.access.disabled).length;
    const minted = m.members.reduce((n, x) => n + x.keys.minted, 0);
    const revoked = m.members.reduce((n, x) => n + x.keys.revoked, 0);
    const settings = m.config ? `default ${m.config.default_decision}${Object.keys(m.config.settings).length ? ` ${canonicalSettings(m.config.settings)}` : ''}` : 'settings not recorded';
    lines.push(`tenant  ${tenant}  ${m.members.length} members (${disabled} disabled), ${minted} keys minted, ${revoked} revoked, ${settings}`);
    // Who was in each approver group, from when to when: with the receipts above, who joined, approved and left.
    const byGroup = new Map<string, string[]>();
    for (const g of m.groups) byGroup.set(g.group, [...(byGroup.get(g.group) ?? []), `${g.principal_id} ${g.joined_at} -> ${g.left_at ?? 'now'}`]);
    for (const [group, stints] of byGroup) lines.push(`  group ${group}: ${stints.join('; ')}`);
    for (const a of m.members.filter((x) => x.access.acts_for.length)) lines.push(`  ${a.principal_id} (${a.access.name}) acts for ${a.access.acts_for.join(', ')}`);
  }
  lines.push(`replayed from ${from}: ${r.records} records, ${r.events} events (${r.duplicates} duplicates), ${r.streams} streams, ${r.runs} runs, ${r.receipts.length} receipts verified, ${r.re_evaluated} decisions re-derived`);
  if (r.unsigned_runs.length) lines.push(`${r.unsigned_runs.length} runs have no receipt yet (pending or in flight)`);
  for (const e of r.edited_runs) lines.push(`edited  ${e.decision_id}  asked ${e.args_digest ?? '-'}  approved ${e.edited_args_digest}  by ${e.approved_by.join(', ')}`);
  for (const d of r.divergences) lines.push(`DIVERGENCE ${d.stream_id ?? '-'} at ${d.position ?? '-'}: ${d.problem}`);
  lines.push(r.divergences.length ? `FAILED: ${r.divergences.length} divergences` : 'OK: no divergence');
  return `${lines.join('\n')}\n`;
}

function canonicalSettings(settings: Record<string, unknown>): string {
  return Object.entries(settings).map(([k, v]) => `${k}=${String(v)}`).join(' ');
}

function parseGraceMs(text: string): number | null {
  if (/^0[smhdw]?$/.test(text)) return 0;
  const seconds = durationSeconds(text);
  return seconds === undefined ? null : seconds * 1000;
}

async function runWhichPolicy(runId: string, opts: WhichPolicyOptions): Promise<number> {
  if (opts.from !== 'kafka' && opts.from !== 'postgres') {
    process.stderr.write('countersign audit which-policy: --from must be kafka or postgres\n');
    return EXIT.usage;
  }
  const decisionId = decisionIdOf(runId);
  const streamId = runStreamId(decisionId);
  const run: StoredEvent[] = [];
  const activations: StoredEvent[] = [];
  try {
    if (opts.from === 'postgres') {
      const db = await auditConnection(loadConfig().DATABASE_URL);
      try {
        run.push(...(await readStream(db, streamId, { raw: true })));
        const res = await db.query<{ e: StoredEvent }>(
          `SELECT json_build_object('position', position::text, 'stream_id', stream_id, 'stream_version', stream_version, 'event_id', event_id,
             'type', type, 'schema_version', schema_version, 'tenant_id', tenant_id, 'data', data, 'metadata', metadata,
             'recorded_at', to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'prev_hash', prev_hash, 'hash', hash) AS e
             FROM events WHERE type = 'PolicyActivated' ORDER BY position`,
        );
        activations.push(...res.rows.map((r) => r.e));
      } finally {
        await db.end();
      }
    } else {
      const env = process.env as Record<string, string | undefined>;
      const config = loadConfig({ DATABASE_URL: 'postgres://unused/unused', ...env });
      const source = createKafkaSource({ ...config.kafka, topic: config.COUNTERSIGN_KAFKA_TOPIC, clientId: 'countersign-audit' });
      const seen = new Set<string>();
      await source.readToEnd((r) => {
        let e: StoredEvent;
        try {
          const parsed = StoredEvent.safeParse(JSON.parse(r.value ?? ''));
          if (!parsed.success) return;
          e = parsed.data;
        } catch {
          return; // malformed records are audit replay's business
        }
        if (seen.has(e.event_id)) return;
        seen.add(e.event_id);
        if (currentStreamId(e.stream_id, e.tenant_id) === streamId) run.push(e);
        else if (e.type === 'PolicyActivated') activations.push(e);
      });
    }
  } catch (err) {
    process.stderr.write(`countersign audit which-policy: cannot read ${opts.from}: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.unavailable;
  }
  const answer = whichPolicy(run, activations);
  if (!answer) {
    process.stderr.write(`countersign audit which-policy: no evaluation of ${decisionId} in ${opts.from}\n`);
    return EXIT.failed;
  }
  process.stdout.write(opts.json ? `${JSON.stringify(answer)}\n` : humanWhich(answer));
  return answer.warnings.length ? EXIT.failed : EXIT.ok;
}

function humanWhich(w: WhichPolicy): string {
  const lines = [`run ${w.decision_id} (tenant ${w.tenant_id}): ${w.decision}, rule ${w.matched_rule ?? '-'}, evaluated at ${w.evaluated_at}`, `snapshot ${w.snapshot_hash}`];
  for (const p of w.policies) {
    lines.push(`${p.scope === 'platform' ? 'platform policy' : 'policy'} ${p.policy_id} v${p.version}  ${p.hash}  activated ${p.activated_at ?? '?'} at position ${p.activation_position ?? '?'}  key=${p.signing_key_id ?? '-'}`);
  }
  for (const warning of w.warnings) lines.push(`WARNING ${warning}`);
  return `${lines.join('\n')}\n`;
}
