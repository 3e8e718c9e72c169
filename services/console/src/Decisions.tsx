import { useEffect, useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { client, unwrap } from './api.ts';
import { ErrorBox, Link } from './App.tsx';
import { navigate, useSearch } from './router.ts';
import { TEXT, VERDICTS, filtersFromSearch, searchOf, type MonitorQuery, type Status, type Verdict } from './monitor-filters.ts';

// The typed client checks MonitorQuery against the API's route where the page sends it.
type Query = MonitorQuery;
const PAGE_SIZE = 50;

/** datetime-local speaks the browser's local time without a zone; the API and the address speak ISO instants. */
const toLocalInput = (iso: string | undefined) => {
  if (!iso) return '';
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
};
const fromLocalInput = (v: string) => (v && !Number.isNaN(Date.parse(v)) ? new Date(v).toISOString() : undefined);

type Draft = Record<(typeof TEXT)[number] | 'status' | 'decision' | 'policy_version' | 'since' | 'until', string>;

function draftOf(q: Query): Draft {
  return {
    policy_id: q.policy_id ?? '', rule: q.rule ?? '', agent: q.agent ?? '', tool: q.tool ?? '', operation: q.operation ?? '',
    status: q.status ?? '', decision: q.decision ?? '', policy_version: q.policy_version === undefined ? '' : String(q.policy_version),
    since: toLocalInput(q.since), until: toLocalInput(q.until),
  };
}

function queryOf(d: Draft, limit: number | undefined): Query {
  const q: Query = {};
  for (const k of TEXT) if (d[k].trim()) q[k] = d[k].trim();
  if (d.status) q.status = d.status as Status;
  if (d.decision) q.decision = d.decision as Verdict;
  if (/^\d{1,9}$/.test(d.policy_version.trim())) q.policy_version = Number(d.policy_version.trim());
  q.since = fromLocalInput(d.since);
  q.until = fromLocalInput(d.until);
  if (limit !== undefined) q.limit = limit;
  return q;
}

/** The monitor: the tenant's decisions, newest first, filtered as the API filters, a page at a time. */
export function Decisions() {
  const search = useSearch();
  const { query, ignored } = filtersFromSearch(search);
  const [draft, setDraft] = useState<Draft>(() => draftOf(query));
  // Back, forward and links change the address: the form shows what the list shows.
  useEffect(() => { setDraft(draftOf(filtersFromSearch(search).query)); }, [search]);
  const list = useQuery({
    queryKey: ['decisions', searchOf(query)],
    queryFn: async () => unwrap(await client.GET('/v1/decisions', { params: { query: { limit: PAGE_SIZE, ...query } } })),
    refetchInterval: 5000,
  });
  const go = (q: Query) => navigate(`/decisions${searchOf(q)}`);
  const apply = (d: Draft) => go(queryOf(d, query.limit));
  const submit = (e: FormEvent) => { e.preventDefault(); apply(draft); };
  const field = (k: keyof Draft) => ({ id: `f-${k}`, name: k, value: draft[k], onChange: (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value }) });
  // Choosing from a list applies at once; typed filters apply with Enter or the button.
  const choose = (k: 'status' | 'decision') => ({ ...field(k), onChange: (e: { target: { value: string } }) => { const d = { ...draft, [k]: e.target.value }; setDraft(d); apply(d); } });
  const next = list.data?.next_cursor;
  return (
    <section aria-labelledby="decisions-title">
      <h1 id="decisions-title">Decisions</h1>
      <form className="filters" aria-label="Filters" onSubmit={submit}>
        <label htmlFor="f-decision">Decision</label>
        <select {...choose('decision')}>
          <option value="">any</option>
          {VERDICTS.map((v) => <option key={v} value={v}>{v}</option>)}
        </select>
        <label htmlFor="f-status">Status</label>
        <select {...choose('status')}>
          <option value="">any</option>
          <option value="pending_approval">pending approval</option>
          <option value="final">final</option>
        </select>
        <label htmlFor="f-policy_id">Policy id</label>
        <input {...field('policy_id')} maxLength={200} size={14} />
        <label htmlFor="f-policy_version">Version</label>
        <input {...field('policy_version')} inputMode="numeric" pattern="\d{1,9}" size={4} title="a version number (with a policy id)" />
        <label htmlFor="f-rule">Rule</label>
        <input {...field('rule')} maxLength={200} size={14} />
        <label htmlFor="f-agent">Agent</label>
        <input {...field('agent')} maxLength={200} size={12} />
        <label htmlFor="f-tool">Tool</label>
        <input {...field('tool')} maxLength={200} size={12} />
        <label htmlFor="f-operation">Operation</label>
        <input {...field('operation')} maxLength={200} size={10} />
        <label htmlFor="f-since">Since</label>
        <input {...field('since')} type="datetime-local" />
        <label htmlFor="f-until">Until</label>
        <input {...field('until')} type="datetime-local" />
        <button type="submit">Apply filters</button>
        <button type="button" onClick={() => go({})}>Clear</button>
      </form>
      {ignored.length > 0 && <p role="status" className="hint">Left out of the address (not a valid value): {ignored.join(', ')}</p>}
      <ErrorBox error={list.error} />
      <table className="list" aria-label="Decisions">
        <thead><tr><th>Decision</th><th>Rule</th><th>Policy</th><th>Run</th><th>Status</th><th>Agent</th><th>Tool</th><th>Requested</th></tr></thead>
        <tbody>
          {list.data?.items.map((d) => (
            <tr key={d.decision_id} data-decision={d.decision_id}>
              <td><span className={`verdict ${d.decision ?? ''}`}>{d.decision ?? '—'}</span></td>
              <td>{d.matched_rule ?? (d.decision ? 'tenant default' : '—')}</td>
              <td>{d.policy_id ? <Link to={`/decisions${searchOf({ policy_id: d.policy_id })}`}>{d.policy_id}{d.policy_version != null ? ` v${d.policy_version}` : ''}</Link> : '—'}</td>
              <td><Link to={`/decisions/${d.decision_id}`} className="mono">{d.run_id ?? d.decision_id}</Link></td>
              <td>{d.status}</td>
              <td>{d.agent_id}</td>
              <td>{d.tool}{d.operation ? ` · ${d.operation}` : ''}</td>
              <td><time dateTime={d.requested_at}>{new Date(d.requested_at).toLocaleString()}</time></td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data && list.data.items.length === 0 && <p role="status">No decisions match these filters.</p>}
      <nav className="pager" aria-label="Pages">
        {query.cursor && <button type="button" onClick={() => go({ ...query, cursor: undefined })}>First page</button>}
        {next && <button type="button" onClick={() => go({ ...query, cursor: next })}>Next page</button>}
      </nav>
    </section>
  );
}

/** One run: its events in order, the hash chain's linkage, and its receipt's verification by the API. */
export function Timeline({ id }: { id: string }) {
  const tl = useQuery({
    queryKey: ['timeline', id],
    queryFn: async () => unwrap(await client.GET('/v1/decisions/{id}/events', { params: { path: { id } } })),
    refetchInterval: (q) => (q.state.data?.receipt.issued ? false : 3000),
  });
  const v = tl.data?.receipt.verification;
  return (
    <section aria-labelledby="timeline-title">
      <h1 id="timeline-title">Run <span className="mono">{id}</span></h1>
      <ErrorBox error={tl.error} />
      {tl.data && (
        <>
          <p className="chain">Hash chain: {tl.data.chain_linked ? 'linked' : 'BROKEN'} · {tl.data.items.length} events</p>
          <p className={`receipt ${v ? (v.ok ? 'ok' : 'error') : ''}`} data-testid="receipt">
            {!tl.data.receipt.issued && 'Receipt: not issued yet (signed when the run is final)'}
            {v?.ok && `Receipt: signature verified with key ${v.key_id} (${v.key_status})`}
            {v && !v.ok && `Receipt: NOT verified — ${v.reason}: ${v.detail}`}
          </p>
          <ol className="timeline">
            {tl.data.items.map((e) => (
              <li key={e.stream_version}>
                <span className="type">{e.type}</span>
                <time dateTime={e.recorded_at}>{new Date(e.recorded_at).toLocaleString()}</time>
                {e.actor && <span className="actor">by {e.actor}</span>}
                {e.channel && <span className="channel">via {e.channel}</span>}
                {summary(e.data) && <span className="summary">{summary(e.data)}</span>}
                <span className="hash mono" title={e.hash}>{e.hash.slice(7, 19)}</span>
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}

function summary(data: Record<string, unknown>): string {
  const parts = ['decision', 'verdict', 'reason', 'matched_rule', 'policy_version'].map((k) => {
    const v = data[k];
    return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? `${k}: ${String(v)}` : null;
  });
  return parts.filter(Boolean).join(' · ');
}
