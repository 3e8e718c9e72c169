import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, client, unwrap } from './api.ts';
import { ErrorBox, Link } from './App.tsx';

type Item = NonNullable<Awaited<ReturnType<typeof loadApprovals>>>['items'][number];
type Round = Exclude<Item, { kind: 'activation_review' }>;
type Review = Extract<Item, { kind: 'activation_review' }>;
const loadApprovals = async () => unwrap(await client.GET('/v1/approvals', { params: { query: { limit: 100 } } }));

/** Rounds waiting for my answer, polled every few seconds so a round closed elsewhere leaves the list. */
export function Inbox() {
  const approvals = useQuery({ queryKey: ['approvals'], queryFn: loadApprovals, refetchInterval: 3000 });
  // Kept above the cards: a round closes (and its card leaves) as soon as an answer counts or is refused.
  const [notices, setNotices] = useState<Notice[]>([]);
  const notify = (n: Notice) => setNotices((all) => [n, ...all].slice(0, 5));
  return (
    <section aria-labelledby="inbox-title">
      <h1 id="inbox-title">Approvals waiting for you</h1>
      <ErrorBox error={approvals.error} />
      {notices.map((n, i) => (
        <p key={i} role={n.ok ? 'status' : 'alert'} className={n.ok ? 'ok notice' : 'error notice'}>{n.decisionId}: {n.text}</p>
      ))}
      {approvals.data && approvals.data.items.length === 0 && <p className="empty">Nothing waits for your answer.</p>}
      <ul className="cards">
        {approvals.data?.items.map((r) => (r.kind === 'activation_review'
          ? <ReviewCard key={r.review_id} review={r} notify={notify} />
          : <RoundCard key={`${r.decision_id}/${r.round}`} round={r} notify={notify} />))}
      </ul>
    </section>
  );
}

type Notice = { decisionId: string; ok: boolean; text: string };

function RoundCard({ round: r, notify }: { round: Round; notify: (n: Notice) => void }) {
  const qc = useQueryClient();
  const [comment, setComment] = useState('');
  const [busy, setBusy] = useState(false);
  const answer = async (verdict: 'approve' | 'reject') => {
    setBusy(true);
    try {
      const res = unwrap(await client.POST('/v1/decisions/{id}/approvals', {
        params: { path: { id: r.decision_id } },
        body: { verdict, round: r.round, args_digest: r.args_digest, ...(comment ? { comment } : {}) },
      }));
      notify({ decisionId: r.decision_id, ok: true, text: `your ${verdict} counted: round ${res.round} is ${res.round_status}` });
    } catch (err) {
      notify({ decisionId: r.decision_id, ok: false, text: `your answer did not count: ${err instanceof ApiError ? err.message : String(err)}` });
    } finally {
      await qc.invalidateQueries({ queryKey: ['approvals'] });
      setBusy(false);
    }
  };
  return (
    <li className="card" data-decision={r.decision_id}>
      <h2>
        <span className="tool">{r.tool}{r.operation ? ` · ${r.operation}` : ''}</span>
        <span className="badge">{r.kind === 'override' ? 'override' : `round ${r.round}`}</span>
      </h2>
      <dl className="facts">
        <dt>Agent</dt><dd>{r.agent_id}</dd>
        <dt>Reason</dt><dd>{r.reason}</dd>
        <dt>Rule</dt><dd>{r.matched_rule ?? '—'}</dd>
        <dt>Arguments</dt><dd className="mono">{r.args_digest ?? 'not bound'}</dd>
        <dt>Groups</dt><dd>{r.groups.join(', ')}</dd>
        <dt>Quorum</dt><dd>{r.approvals} of {r.quorum}</dd>
        <dt>Deadline</dt><dd><time dateTime={r.deadline}>{new Date(r.deadline).toLocaleString()}</time></dd>
        {r.justification && (<><dt>Justification</dt><dd>{r.justification}</dd></>)}
        <dt>Run</dt><dd><Link to={`/decisions/${r.decision_id}`}>{r.decision_id}</Link></dd>
      </dl>
      <label htmlFor={`comment-${r.decision_id}`}>Comment</label>
      <textarea id={`comment-${r.decision_id}`} value={comment} maxLength={4000} onChange={(e) => setComment(e.target.value)} />
      <div className="actions">
        <button type="button" className="approve" disabled={busy} onClick={() => void answer('approve')}>Approve</button>
        <button type="button" className="reject" disabled={busy} onClick={() => void answer('reject')}>Reject</button>
      </div>
    </li>
  );
}

/** A four-eyes review of a policy change this admin may answer. */
function ReviewCard({ review: r, notify }: { review: Review; notify: (n: Notice) => void }) {
  const qc = useQueryClient();
  const [comment, setComment] = useState('');
  const [busy, setBusy] = useState(false);
  const answer = async (verdict: 'approve' | 'reject') => {
    setBusy(true);
    try {
      unwrap(await client.POST('/v1/policies/{id}/activation/approvals', {
        params: { path: { id: r.policy_id } },
        body: { verdict, review_id: r.review_id, ...(comment ? { comment } : {}) },
      }));
      notify({ decisionId: r.policy_id, ok: true, text: `your ${verdict} of the ${r.change} counted` });
    } catch (err) {
      notify({ decisionId: r.policy_id, ok: false, text: `your answer did not count: ${err instanceof ApiError ? err.message : String(err)}` });
    } finally {
      await qc.invalidateQueries({ queryKey: ['approvals'] });
      setBusy(false);
    }
  };
  return (
    <li className="card" data-review={r.review_id}>
      <h2>
        <span className="tool">policy {r.policy_id} v{r.version}</span>
        <span className="badge">{r.change} review</span>
      </h2>
      <dl className="facts">
        <dt>Asked by</dt><dd>{r.requested_by}</dd>
        <dt>Authors</dt><dd>{r.authors.join(', ')}</dd>
        <dt>Document</dt><dd className="mono">{r.document_hash}</dd>
        {r.expected_loosening.length > 0 && (<><dt>Expected loosening</dt><dd>{r.expected_loosening.join(', ')}</dd></>)}
        <dt>Deadline</dt><dd><time dateTime={r.deadline}>{new Date(r.deadline).toLocaleString()}</time></dd>
      </dl>
      <label htmlFor={`comment-${r.review_id}`}>Comment</label>
      <textarea id={`comment-${r.review_id}`} value={comment} maxLength={4000} onChange={(e) => setComment(e.target.value)} />
      <div className="actions">
        <button type="button" className="approve" disabled={busy} onClick={() => void answer('approve')}>Approve</button>
        <button type="button" className="reject" disabled={busy} onClick={() => void answer('reject')}>Reject</button>
      </div>
    </li>
  );
}
