import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { Replay, type ReplayReport } from '../../audit/replay.ts';
import { loadConfig } from '../../config.ts';
import { createPool } from '../../events/db.ts';
import { readAll } from '../../events/read-events.ts';
import { createKafkaSource } from '../../publisher/kafka.ts';
import { EXIT } from '../exit-codes.ts';
import { loadKeys, registerAuditVerify } from './audit-verify.ts';

type ReplayOptions = { from: 'kafka' | 'postgres'; tenant?: string; since?: string; json?: boolean; keys?: string; receipts?: string };

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
    .option('--json', 'print the report as JSON')
    .action(async (opts: ReplayOptions) => {
      process.exitCode = await runReplay(opts);
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
  const env = process.env as Record<string, string | undefined>;
  const keys = await loadKeys(opts.keys, { env, fetch, stdout: (s: string) => process.stdout.write(s), stderr: (s: string) => process.stderr.write(s) })
    .then((k) => k.set)
    .catch((err: unknown) => {
      process.stderr.write(`warning: receipt signatures not checked: ${err instanceof Error ? err.message : String(err)}\n`);
      return null;
    });
  const replay = new Replay({ keys, tenantId: opts.tenant, since });
  const bar = !opts.json && process.stderr.isTTY ? new cliProgress.SingleBar({ format: 'replay {bar} {value} records', stream: process.stderr }, cliProgress.Presets.shades_classic) : null;
  bar?.start(0, 0);
  let n = 0;
  const tick = () => {
    n += 1;
    if (bar && n % 500 === 0) { bar.setTotal(n); bar.update(n); }
  };
  try {
    if (opts.from === 'kafka') {
      const config = loadConfig({ DATABASE_URL: 'postgres://unused/unused', ...env });
      const source = createKafkaSource({ brokers: config.KAFKA_BROKERS.split(','), topic: config.COUNTERSIGN_KAFKA_TOPIC, clientId: 'countersign-audit' });
      await source.readToEnd((r) => { replay.add({ value: r.value, where: `kafka:${r.partition}@${r.offset}` }); tick(); });
    } else {
      const config = loadConfig();
      const db = createPool(config.DATABASE_URL, 2);
      try {
        for await (const e of readAll(db, { tenantId: opts.tenant })) { replay.add({ value: JSON.stringify(e), where: `postgres:${e.position}` }); tick(); }
      } finally {
        await db.end();
      }
    }
  } catch (err) {
    bar?.stop();
    process.stderr.write(`countersign audit replay: cannot read ${opts.from}: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.unavailable;
  }
  bar?.update(n);
  bar?.stop();
  const report = replay.finish();
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
    lines.push(`policy  ${id}  versions ${versions.map((v) => `v${v.version}`).join(' -> ')}`);
  }
  lines.push(`replayed from ${from}: ${r.records} records, ${r.events} events (${r.duplicates} duplicates), ${r.streams} streams, ${r.runs} runs, ${r.receipts.length} receipts verified, ${r.re_evaluated} decisions re-derived`);
  if (r.unsigned_runs.length) lines.push(`${r.unsigned_runs.length} runs have no receipt yet (pending or in flight)`);
  for (const d of r.divergences) lines.push(`DIVERGENCE ${d.stream_id ?? '-'} at ${d.position ?? '-'}: ${d.problem}`);
  lines.push(r.divergences.length ? `FAILED: ${r.divergences.length} divergences` : 'OK: no divergence');
  return `${lines.join('\n')}\n`;
}
