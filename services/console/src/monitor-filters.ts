// The monitor's filters and the address that holds them: pure, so the page and the unit tests share them.

export type Status = 'final' | 'pending_approval';
export type Verdict = 'DENY' | 'REQUIRE_APPROVAL' | 'ALLOW_WITH_CONSTRAINTS' | 'ALLOW';
export const TEXT = ['policy_id', 'rule', 'agent', 'tool', 'operation'] as const;

/** GET /v1/decisions's query, as the console sends it. */
export type MonitorQuery = {
  limit?: number; cursor?: string; status?: Status; decision?: Verdict; policy_id?: string; policy_version?: number;
  rule?: string; agent?: string; tool?: string; operation?: string; since?: string; until?: string;
};
type Query = MonitorQuery;

export const STATUSES: readonly Status[] = ['pending_approval', 'final'];
export const VERDICTS: readonly Verdict[] = ['DENY', 'REQUIRE_APPROVAL', 'ALLOW_WITH_CONSTRAINTS', 'ALLOW'];

/**
 * The monitor's filters as the address bar holds them (so a filtered view can be linked and reloaded). A value
 * the API could not take is left out and named, rather than sent to fail the whole page.
 */
export function filtersFromSearch(search: string): { query: Query; ignored: string[] } {
  const u = new URLSearchParams(search);
  const query: Query = {};
  const ignored: string[] = [];
  const take = (key: string, ok: (v: string) => boolean, set: (v: string) => void) => {
    const v = u.get(key)?.trim();
    if (!v) return;
    if (ok(v)) set(v);
    else ignored.push(key);
  };
  const text = (v: string) => v.length <= 200 && !/\p{Cc}/u.test(v);
  for (const k of TEXT) take(k, text, (v) => { query[k] = v; });
  take('status', (v) => (STATUSES as readonly string[]).includes(v), (v) => { query.status = v as Status; });
  take('decision', (v) => (VERDICTS as readonly string[]).includes(v), (v) => { query.decision = v as Verdict; });
  take('policy_version', (v) => /^\d{1,9}$/.test(v), (v) => { query.policy_version = Number(v); });
  take('since', (v) => !Number.isNaN(Date.parse(v)), (v) => { query.since = new Date(v).toISOString(); });
  take('until', (v) => !Number.isNaN(Date.parse(v)), (v) => { query.until = new Date(v).toISOString(); });
  take('limit', (v) => /^\d{1,3}$/.test(v) && Number(v) >= 1 && Number(v) <= 200, (v) => { query.limit = Number(v); });
  take('cursor', (v) => v.length <= 200, (v) => { query.cursor = v; });
  return { query, ignored };
}

/** The address of a filtered view: its keys in a fixed order, empty ones left out. */
export function searchOf(query: Query): string {
  const u = new URLSearchParams();
  for (const k of ['decision', 'status', ...TEXT, 'policy_version', 'since', 'until', 'limit', 'cursor'] as const) {
    const v = query[k];
    if (v !== undefined && v !== '') u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}

