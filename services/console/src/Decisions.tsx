import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { client, unwrap } from './api.ts';
import { ErrorBox, Link } from './App.tsx';

type Status = 'final' | 'pending_approval' | '';

/** The tenant's decisions, newest first, filtered as the API filters (status, agent). */
export function Decisions() {
  const [status, setStatus] = useState<Status>('');
  const [agent, setAgent] = useState('');
  const list = useQuery({
    queryKey: ['decisions', status, agent],
    queryFn: async () => unwrap(await client.GET('/v1/decisions', { params: { query: { limit: 50, ...(status ? { status } : {}), ...(agent ? { agent } : {}) } } })),
    refetchInterval: 5000,
  });
  return (
    <section aria-labelledby="decisions-title">
      <h1 id="decisions-title">Decisions</h1>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label htmlFor="f-status">Status</label>
        <select id="f-status" value={status} onChange={(e) => setStatus(e.target.value as Status)}>
          <option value="">any</option>
          <option value="pending_approval">pending approval</option>
          <option value="final">final</option>
        </select>
        <label htmlFor="f-agent">Agent</label>
        <input id="f-agent" value={agent} maxLength={200} onChange={(e) => setAgent(e.target.value.trim())} />
      </form>
      <ErrorBox error={list.error} />
      <table className="list">
        <thead><tr><th>Decision</th><th>Agent</th><th>Tool</th><th>Outcome</th><th>Status</th><th>Requested</th></tr></thead>
        <tbody>
          {list.data?.items.map((d) => (
            <tr key={d.decision_id}>
              <td><Link to={`/decisions/${d.decision_id}`} className="mono">{d.decision_id.slice(0, 16)}…</Link></td>
              <td>{d.agent_id}</td>
              <td>{d.tool}{d.operation ? ` · ${d.operation}` : ''}</td>
              <td><span className={`verdict ${d.decision ?? ''}`}>{d.decision ?? '—'}</span></td>
              <td>{d.status}</td>
              <td><time dateTime={d.requested_at}>{new Date(d.requested_at).toLocaleString()}</time></td>
            </tr>
          ))}
        </tbody>
      </table>
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
