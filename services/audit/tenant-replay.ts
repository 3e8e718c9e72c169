// One tenant's audit replay run by the API (the console's Audit page): the same Replay the CLI runs
// (`countersign audit replay --from postgres --tenant T`), over that tenant's rows only, read under its
// row-level security. The summary is recorded (migration 0025) so the page shows the last result.
import { withTenant, type Db } from '../events/db.ts';
import { readAll } from '../events/read-events.ts';
import { loadPublicKeys } from '../receipts/keyring.ts';
import { Replay, type ReplayReport } from './replay.ts';

export type TenantReplaySummary = {
  id: string;
  tenant_id: string;
  started_by: string;
  started_at: string;
  finished_at: string;
  ok: boolean;
  records: number;
  events: number;
  streams: number;
  runs: number;
  receipts: number;
  unsigned_runs: number;
  policies: number;
  re_evaluated: number;
  signatures_checked: boolean;
  divergences: Array<{ stream_id: string | null; position: string | null; problem: string }>;
  divergence_count: number;
};

/** At most this many divergences are kept in the summary (the count is always whole). */
const KEPT_DIVERGENCES = 50;

function summarize(report: ReplayReport): Omit<TenantReplaySummary, 'id' | 'tenant_id' | 'started_by' | 'started_at' | 'finished_at' | 'signatures_checked'> {
  return {
    ok: report.divergences.length === 0,
    records: report.records,
    events: report.events,
    streams: report.streams,
    runs: report.runs,
    receipts: report.receipts.length,
    unsigned_runs: report.unsigned_runs.length,
    policies: Object.keys(report.policies).length,
    re_evaluated: report.re_evaluated,
    divergences: report.divergences.slice(0, KEPT_DIVERGENCES),
    divergence_count: report.divergences.length,
  };
}

type Row = { id: string; tenant_id: string; principal_id: string; started_at: Date; finished_at: Date; ok: boolean; summary: Omit<TenantReplaySummary, 'id' | 'tenant_id' | 'started_by' | 'started_at' | 'finished_at' | 'ok'> };
const fromRow = (r: Row): TenantReplaySummary => ({ ...r.summary, id: String(r.id), tenant_id: r.tenant_id, started_by: r.principal_id, started_at: r.started_at.toISOString(), finished_at: r.finished_at.toISOString(), ok: r.ok });

/**
 * Replays one tenant's log from Postgres and records the result. Reads page by page (the event loop is free
 * between pages); the receipts' and policies' signatures are checked with this deployment's public keys.
 */
export async function runTenantReplay(db: Db, keysDir: string, tenantId: string, principalId: string, now: () => Date = () => new Date(), onProgress: (events: number) => void = () => {}): Promise<TenantReplaySummary> {
  const startedAt = now();
  const keys = await loadPublicKeys(keysDir).catch(() => null);
  // Inline checks: worker threads are for the CLI's whole-log replays, not for a request of the API.
  const replay = new Replay({ keys, tenantId, parallel: false });
  await withTenant(db, tenantId, async (c) => {
    // raw: hashes cover the stored form; Replay upcasts after checking them.
    let n = 0;
    for await (const e of readAll(c, { tenantId, raw: true })) {
      replay.add({ value: JSON.stringify(e), where: `postgres:${e.position}` });
      if (++n % 1_000 === 0) onProgress(n);
    }
    onProgress(n);
  });
  const report = replay.finish();
  const finishedAt = now();
  const summary = { ...summarize(report), signatures_checked: keys !== null };
  const { ok, ...rest } = summary;
  const res = await withTenant(db, tenantId, (c) => c.query<Row>(
    `INSERT INTO audit_replays (tenant_id, principal_id, started_at, finished_at, ok, summary) VALUES ($1, $2, $3, $4, $5, $6)
     RETURNING id, tenant_id, principal_id, started_at, finished_at, ok, summary`,
    [tenantId, principalId, startedAt, finishedAt, ok, JSON.stringify(rest)],
  ));
  return fromRow(res.rows[0]!);
}

/** The tenant's last recorded replay, or null. */
export async function lastTenantReplay(db: Db, tenantId: string): Promise<TenantReplaySummary | null> {
  const res = await withTenant(db, tenantId, (c) => c.query<Row>(
    'SELECT id, tenant_id, principal_id, started_at, finished_at, ok, summary FROM audit_replays WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1',
    [tenantId],
  ));
  return res.rows[0] ? fromRow(res.rows[0]) : null;
}
