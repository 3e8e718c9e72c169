import { createHash } from 'node:crypto';
import type pg from 'pg';
import { z } from 'zod';
import type { EventData } from '../../schemas/events.ts';
import { withTenant, type Db } from '../events/db.ts';
import { appendTenantEvents } from '../identity/tenant-stream.ts';

/**
 * A tenant's evaluator for judgment rules (PUT /v1/tenants/{id}/evaluator): an OpenAI-compatible
 * chat-completions endpoint. `api_key` is a secret: stored for the worker, never answered, never logged.
 * Every change is an EvaluatorChanged event on the tenant's stream, in the same transaction as the row, with
 * a fingerprint of the key in place of the key.
 */
export const EvaluatorSettingsBody = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: 'url must be an http(s) URL: the base URL of an OpenAI-compatible API, e.g. https://api.openai.com/v1' }).max(2000)
    .describe('Base URL of the chat-completions API (the client posts to <url>/chat/completions). Checked like callback URLs: private addresses are refused unless the operator allow-lists the host.'),
  model: z.string().min(1).max(200).describe('Model to ask, e.g. gpt-4o-mini.'),
  api_key: z.string().min(1).max(4000).describe('Bearer key for the endpoint. Write-only: never returned or logged.'),
  timeout_ms: z.number().int().min(100).max(60_000).default(10_000).describe('Per question; a slower answer is an error verdict, and people decide.'),
});
export type EvaluatorSettingsBody = z.infer<typeof EvaluatorSettingsBody>;

export const EvaluatorSettingsView = z.strictObject({
  tenant_id: z.string(),
  url: z.string(),
  model: z.string(),
  timeout_ms: z.number().int(),
  api_key_set: z.literal(true).describe('The key is stored; it is never shown.'),
  updated_by: z.string(),
  updated_at: z.string(),
});
export type EvaluatorSettingsView = z.infer<typeof EvaluatorSettingsView>;

export type EvaluatorSettings = { tenant_id: string; url: string; model: string; api_key: string; timeout_ms: number; updated_by: string; updated_at: string };

type Row = { tenant_id: string; url: string; model: string; api_key: string; timeout_ms: number; updated_by: string; updated_at: Date };
const toSettings = (r: Row): EvaluatorSettings => ({ ...r, updated_at: r.updated_at.toISOString() });

/** The settings without the secret: what the API answers. */
export function viewOf(s: EvaluatorSettings): EvaluatorSettingsView {
  return { tenant_id: s.tenant_id, url: s.url, model: s.model, timeout_ms: s.timeout_ms, api_key_set: true, updated_by: s.updated_by, updated_at: s.updated_at };
}

export async function loadEvaluator(db: Db, tenantId: string): Promise<EvaluatorSettings | null> {
  const res = await withTenant(db, tenantId, (c) => c.query<Row>('SELECT tenant_id, url, model, api_key, timeout_ms, updated_by, updated_at FROM tenant_evaluators WHERE tenant_id = $1', [tenantId]));
  return res.rows[0] ? toSettings(res.rows[0]) : null;
}

/** Whether the tenant has an evaluator (the decision path asks this only when judgment rules applied). */
export async function hasEvaluator(db: Db, tenantId: string): Promise<boolean> {
  const res = await withTenant(db, tenantId, (c) => c.query('SELECT 1 FROM tenant_evaluators WHERE tenant_id = $1', [tenantId]));
  return (res.rowCount ?? 0) > 0;
}

type Recorded = NonNullable<EventData<'EvaluatorChanged'>['after']>;

/** sha256: and 16 hex digits of SHA-256 over the key: tells keys apart in the log without carrying one. */
export function apiKeyFingerprint(apiKey: string): string {
  return `sha256:${createHash('sha256').update(apiKey, 'utf8').digest('hex').slice(0, 16)}`;
}

const recorded = (r: Pick<Row, 'url' | 'model' | 'api_key' | 'timeout_ms'>): Recorded =>
  ({ url: r.url, model: r.model, timeout_ms: r.timeout_ms, api_key_fingerprint: apiKeyFingerprint(r.api_key) });

/** The current row, with the tenant's row locked so that concurrent changes record their before in order. */
async function lockedCurrent(c: pg.PoolClient, tenantId: string): Promise<Row | null> {
  await c.query('SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE', [tenantId]);
  const res = await c.query<Row>('SELECT tenant_id, url, model, api_key, timeout_ms, updated_by, updated_at FROM tenant_evaluators WHERE tenant_id = $1', [tenantId]);
  return res.rows[0] ?? null;
}

export async function saveEvaluator(db: Db, tenantId: string, body: EvaluatorSettingsBody, by: string): Promise<EvaluatorSettings> {
  const row = await withTenant(db, tenantId, async (c) => {
    const cur = await lockedCurrent(c, tenantId);
    const res = await c.query<Row>(
      `INSERT INTO tenant_evaluators (tenant_id, url, model, api_key, timeout_ms, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, now())
       ON CONFLICT (tenant_id) DO UPDATE SET url = EXCLUDED.url, model = EXCLUDED.model, api_key = EXCLUDED.api_key, timeout_ms = EXCLUDED.timeout_ms,
         updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
       RETURNING tenant_id, url, model, api_key, timeout_ms, updated_by, updated_at`,
      [tenantId, body.url, body.model, body.api_key, body.timeout_ms, by],
    );
    await appendTenantEvents(c, tenantId, [{ type: 'EvaluatorChanged', data: { tenant_id: tenantId, before: cur ? recorded(cur) : null, after: recorded(res.rows[0]!), by } }]);
    return res.rows[0]!;
  });
  return toSettings(row);
}

export async function deleteEvaluator(db: Db, tenantId: string, by: string): Promise<boolean> {
  return withTenant(db, tenantId, async (c) => {
    const cur = await lockedCurrent(c, tenantId);
    if (!cur) return false;
    await c.query('DELETE FROM tenant_evaluators WHERE tenant_id = $1', [tenantId]);
    await appendTenantEvents(c, tenantId, [{ type: 'EvaluatorChanged', data: { tenant_id: tenantId, before: recorded(cur), after: null, by } }]);
    return true;
  });
}
