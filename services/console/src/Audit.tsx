import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, client, unwrap } from './api.ts';
import { ErrorBox } from './App.tsx';

/** The tenant's last audit replay run through the API, and a button that runs one (one per tenant per interval). */
export function Audit() {
  const qc = useQueryClient();
  const latest = useQuery({
    queryKey: ['audit-latest'],
    queryFn: async () => unwrap(await client.GET('/v1/audit/replays/latest')).replay,
  });
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<unknown>(null);
  const replay = async () => {
    setBusy(true);
    setFailure(null);
    try {
      const res = unwrap(await client.POST('/v1/audit/replays', { body: {} }));
      qc.setQueryData(['audit-latest'], res);
    } catch (err) {
      setFailure(err);
    } finally {
      setBusy(false);
    }
  };
  const r = latest.data;
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit</h1>
      <p className="hint">A replay rebuilds every receipt and policy version chain of this tenant from the event log, checks every hash chain and signature, and re-derives every decision from its recorded snapshot and facts (as <code>countersign audit replay --from postgres --tenant …</code>).</p>
      <div className="actions"><button type="button" disabled={busy} onClick={() => void replay()}>{busy ? 'Replaying…' : 'Run a replay now'}</button></div>
      <ErrorBox error={failure instanceof ApiError && failure.status === 429 ? new Error(`Not yet: ${failure.message}`) : failure} />
      <ErrorBox error={latest.error} />
      {latest.data === null && <p>No replay has run for this tenant yet.</p>}
      {r && (
        <section className="panel" aria-labelledby="last-title" data-testid="replay-result">
          <h2 id="last-title" className={r.ok ? 'ok' : 'error'}>{r.ok ? 'Last replay: no divergence' : `Last replay: ${r.divergence_count} divergences`}</h2>
          <dl className="facts">
            <dt>Ran</dt><dd><time dateTime={r.finished_at}>{new Date(r.finished_at).toLocaleString()}</time> by {r.started_by} ({Math.max(0, new Date(r.finished_at).getTime() - new Date(r.started_at).getTime())} ms)</dd>
            <dt>Events</dt><dd>{r.events} in {r.streams} streams</dd>
            <dt>Runs</dt><dd>{r.runs} ({r.re_evaluated} decisions re-derived, {r.unsigned_runs} still in flight)</dd>
            <dt>Receipts</dt><dd>{r.receipts} rebuilt and verified</dd>
            <dt>Policies</dt><dd>{r.policies} version chains</dd>
            <dt>Signatures</dt><dd>{r.signatures_checked ? 'checked with the deployment\'s public keys' : 'NOT checked (no public keys)'}</dd>
          </dl>
          {r.divergences.length > 0 && (
            <ul aria-label="Divergences">{r.divergences.map((d, i) => <li key={i} className="error"><span className="mono">{d.stream_id ?? '—'} @ {d.position ?? '—'}</span>: {d.problem}</li>)}</ul>
          )}
        </section>
      )}
    </section>
  );
}
