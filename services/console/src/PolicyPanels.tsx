import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { client, unwrap } from './api.ts';
import { ErrorBox } from './App.tsx';
import { useMe } from './session.ts';
import { can } from './roles.ts';
import { draftDocument, show, type PolicySummary } from './Policies.tsx';

export type Review = { review_id: string; version: number; status: string; requested_by: string; deadline: string; approved_by: string | null; rejected_by: string | null };
export type ValidationReport = {
  runs: number; window_days: number; changed: number; stricter: number; looser: number; unchanged: number;
  by_rule: Record<string, { stricter: number; looser: number; unchanged: number; changed: number }>;
  examples: Array<{ decision_id: string; before: string; after: string; rule: string | null }>;
};
type Run = (what: string, fn: () => Promise<string | void>) => Promise<void>;

/** Saves a JSON value as a file (a blob of this page: nothing is fetched from elsewhere). */
function download(name: string, value: unknown): void {
  const url = URL.createObjectURL(new Blob([`${JSON.stringify(value, null, 2)}\n`], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Everything around the editor: four-eyes review, versions (export, roll back, deprecate), diff, simulation. */
export function PolicyPanels({ id, policy, draftText, busy, run }: { id: string | null; policy: PolicySummary | null; draftText: string; busy: boolean; run: Run }) {
  return (
    <>
      {id && policy?.activation_review && <ReviewPanel id={id} review={policy.activation_review} busy={busy} run={run} />}
      {id && policy && <VersionsPanel id={id} policy={policy} busy={busy} run={run} />}
      {id && policy && <DiffPanel id={id} policy={policy} />}
      <SimulatePanel draftText={draftText} />
    </>
  );
}

function ReviewPanel({ id, review, busy, run }: { id: string; review: Review; busy: boolean; run: Run }) {
  const me = useMe();
  const [comment, setComment] = useState('');
  const answer = (verdict: 'approve' | 'reject') => run(`Review ${verdict}d`, async () => {
    const res = unwrap(await client.POST('/v1/policies/{id}/activation/approvals', { params: { path: { id } }, body: { verdict, review_id: review.review_id, channel: 'dashboard', ...(comment ? { comment } : {}) } }));
    return `Your ${verdict} counted: the review is ${show(res['status'])}`;
  });
  const mayAnswer = review.status === 'open' && can(me, 'reviewActivation') && review.requested_by !== me.id;
  return (
    <section aria-labelledby="review-title" className="panel" data-testid="activation-review">
      <h2 id="review-title">Four-eyes review of v{review.version}: {review.status === 'open' ? 'waiting for a second admin' : review.status}</h2>
      <p>Requested by {review.requested_by}; deadline <time dateTime={review.deadline}>{new Date(review.deadline).toLocaleString()}</time>
        {review.approved_by ? `; approved by ${review.approved_by}` : ''}{review.rejected_by ? `; rejected by ${review.rejected_by}` : ''}</p>
      {review.status === 'open' && review.requested_by === me.id && <p className="hint">A second admin answers this review; the requester cannot.</p>}
      {mayAnswer && (
        <>
          <label htmlFor="review-comment">Review comment</label>
          <textarea id="review-comment" value={comment} maxLength={4000} onChange={(e) => setComment(e.target.value)} />
          <div className="actions">
            <button type="button" className="approve" disabled={busy} onClick={() => void answer('approve')}>Approve activation</button>
            <button type="button" className="reject" disabled={busy} onClick={() => void answer('reject')}>Reject activation</button>
          </div>
        </>
      )}
    </section>
  );
}

function VersionsPanel({ id, policy, busy, run }: { id: string; policy: PolicySummary; busy: boolean; run: Run }) {
  const me = useMe();
  const writer = can(me, 'writePolicies');
  const versions = useQuery({
    queryKey: ['policy-versions', id],
    queryFn: async () => unwrap(await client.GET('/v1/policies/{id}/versions', { params: { path: { id } } })),
  });
  const pending = (status: number, what: string) => (status === 202 ? `${what} waits for a second admin's review (four-eyes)` : undefined);
  const rollback = (to: number) => run(`Rolled back to v${to}`, async () => {
    const res = await client.POST('/v1/policies/{id}/rollback', { params: { path: { id } }, body: { to_version: to } });
    const data = unwrap(res);
    return pending(res.response.status, `Rollback to v${to}`) ?? `Rolled back: v${show(data['version'])} re-activates v${to}'s document`;
  });
  const deprecate = () => run('Deprecated', async () => {
    const res = await client.POST('/v1/policies/{id}/deprecate', { params: { path: { id } } });
    unwrap(res);
    return pending(res.response.status, 'Deprecation') ?? `Deprecated: v${show(policy.active_version)} no longer applies`;
  });
  const exportVersion = (v: number) => run(`Exported v${v}`, async () => {
    const data = unwrap(await client.GET('/v1/policies/{id}/export', { params: { path: { id }, query: { version: v } } }));
    download(`${id}.v${v}.json`, data);
    return `Exported v${v} as signed JSON (key ${data.signing_key_id})`;
  });
  const items = versions.data?.items ?? [];
  return (
    <section aria-labelledby="versions-title" className="panel">
      <h2 id="versions-title">Versions</h2>
      <ErrorBox error={versions.error} />
      {items.length === 0 ? <p className="hint">No version activated yet.</p> : (
        <div className="scroll">
          <table className="list" aria-label="Versions">
            <thead><tr><th>Version</th><th>State</th><th>Activated</th><th>Hash</th><th>Actions</th></tr></thead>
            <tbody>
              {items.map((v) => (
                <tr key={v.version}>
                  <td>v{v.version}{v.rolled_back_to ? ` (rollback to v${v.rolled_back_to})` : ''}{v.imported ? ' (imported)' : ''}</td>
                  <td>{v.active ? <strong>active</strong> : 'superseded'}</td>
                  <td>{v.activated_by}{v.approved_by ? `, approved by ${v.approved_by}` : ''} · <time dateTime={v.activated_at}>{new Date(v.activated_at).toLocaleString()}</time></td>
                  <td className="mono" title={v.hash}>{v.hash.slice(7, 19)}</td>
                  <td className="actions">
                    <button type="button" disabled={busy} onClick={() => void exportVersion(v.version)} aria-label={`Export v${v.version}`}>Export</button>
                    {writer && !v.active && <button type="button" disabled={busy} onClick={() => void rollback(v.version)} aria-label={`Roll back to v${v.version}`}>Roll back</button>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {writer && policy.active_version !== null && <div className="actions"><button type="button" disabled={busy} onClick={() => void deprecate()}>Deprecate</button></div>}
    </section>
  );
}

function DiffPanel({ id, policy }: { id: string; policy: PolicySummary }) {
  const choices = [...Array.from({ length: policy.latest_version ?? 0 }, (_, i) => String(i + 1)), ...(policy.draft ? ['draft'] : [])];
  // The latest two by default (the draft against the version before it, or the last two versions).
  const [fromChoice, setFrom] = useState('');
  const [toChoice, setTo] = useState('');
  const from = fromChoice || (choices.length > 1 ? choices[choices.length - 2]! : '');
  const to = toChoice || (choices.length > 1 ? choices[choices.length - 1]! : '');
  const diff = useQuery({
    queryKey: ['policy-diff', id, from, to],
    enabled: Boolean(from && to && from !== to),
    queryFn: async () => unwrap(await client.GET('/v1/policies/{id}/diff', { params: { path: { id }, query: { from, to } } })),
  });
  if (choices.length < 2) return null;
  const label = (c: string) => (c === 'draft' ? 'draft' : `v${c}`);
  return (
    <section aria-labelledby="diff-title" className="panel">
      <h2 id="diff-title">Difference between versions</h2>
      <div className="filters">
        <label htmlFor="diff-from">From</label>
        <select id="diff-from" value={from} onChange={(e) => setFrom(e.target.value)}>{choices.map((c) => <option key={c} value={c}>{label(c)}</option>)}</select>
        <label htmlFor="diff-to">To</label>
        <select id="diff-to" value={to} onChange={(e) => setTo(e.target.value)}>{choices.map((c) => <option key={c} value={c}>{label(c)}</option>)}</select>
      </div>
      <ErrorBox error={diff.error} />
      {diff.data && (
        <ul className="diff" aria-label="Rule changes">
          {diff.data.rules.map((r) => (
            <li key={r.rule} className={`diff-${r.change}`}>
              <strong>{r.change}</strong> <span className="mono">{r.rule}</span>
              {r.change === 'changed' && <pre className="mono args">{`- ${JSON.stringify(r.from)}\n+ ${JSON.stringify(r.to)}`}</pre>}
              {r.change === 'added' && <pre className="mono args">{`+ ${JSON.stringify(r.to)}`}</pre>}
              {r.change === 'removed' && <pre className="mono args">{`- ${JSON.stringify(r.from)}`}</pre>}
            </li>
          ))}
          {diff.data.other.map((o) => <li key={o.field} className="diff-changed"><strong>changed</strong> <span className="mono">{o.field}</span>: {JSON.stringify(o.from)} → {JSON.stringify(o.to)}</li>)}
        </ul>
      )}
    </section>
  );
}

const SAMPLE_REQUEST = `{
  "agent": { "id": "pay-bot" },
  "action": { "tool": "payment_tool", "operation": "Refund" },
  "context": { "environment": "prod", "amount": 650 }
}`;

type Simulated = { decision: string; status: string; reason: string; matched_rule: string | null; matched_rules?: Array<{ policy_id: string; version: number; rule: string; decision: string }>; constraints?: Record<string, unknown> };

/** What a request would get, against the active set or with the draft in the editor; nothing starts. */
function SimulatePanel({ draftText }: { draftText: string }) {
  const [request, setRequest] = useState(SAMPLE_REQUEST);
  const [withDraft, setWithDraft] = useState(true);
  const [result, setResult] = useState<Simulated | null>(null);
  const [failure, setFailure] = useState<unknown>(null);
  const simulate = async () => {
    setFailure(null);
    setResult(null);
    try {
      const parsed = JSON.parse(request) as Record<string, unknown>;
      const policy = withDraft ? draftDocument(draftText) : null;
      if (withDraft && !policy) throw new Error('the draft in the editor does not parse as YAML');
      setResult(unwrap(await client.POST('/v1/policy/simulate', { body: { request: parsed, ...(policy ? { policy } : {}) } })));
    } catch (err) {
      setFailure(err instanceof SyntaxError ? new Error(`the request is not JSON: ${err.message}`) : err);
    }
  };
  return (
    <section aria-labelledby="simulate-title" className="panel">
      <h2 id="simulate-title">Simulate</h2>
      <label htmlFor="simulate-request">Request (JSON)</label>
      <textarea id="simulate-request" className="mono" rows={7} spellCheck={false} value={request} onChange={(e) => setRequest(e.target.value)} />
      <label className="inline"><input type="checkbox" checked={withDraft} onChange={(e) => setWithDraft(e.target.checked)} /> with the policy in the editor</label>
      <div className="actions"><button type="button" onClick={() => void simulate()}>Simulate</button></div>
      <ErrorBox error={failure} />
      {result && (
        <p role="status" data-testid="simulation">
          <span className={`verdict ${result.decision}`}>{result.decision}</span> ({result.status}) — {result.reason}
          {result.matched_rules?.length ? ` · rules: ${result.matched_rules.map((m) => `${m.policy_id} v${m.version}/${m.rule}`).join(', ')}` : ''}
          {result.constraints && Object.keys(result.constraints).length ? ` · constraints ${JSON.stringify(result.constraints)}` : ''}
        </p>
      )}
    </section>
  );
}
