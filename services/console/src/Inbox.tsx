import { useEffect, useRef, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, client, unwrap } from './api.ts';
import { ErrorBox, Link } from './App.tsx';
import { parseEditedArgs } from './edited-args.ts';
import { browserStreamDeps, watchApprovalStream, type StreamMode } from './approval-stream.ts';

type Item = NonNullable<Awaited<ReturnType<typeof loadApprovals>>>['items'][number];
type Round = Exclude<Item, { kind: 'activation_review' }>;
type Review = Extract<Item, { kind: 'activation_review' }>;
/** The first page: the soonest deadlines (the API picks the caller's rounds in SQL before this limit). */
export const INBOX_PAGE = 20;
const loadApprovals = async () => unwrap(await client.GET('/v1/approvals', { params: { query: { limit: INBOX_PAGE } } }));
const keyOf = (r: Item) => (r.kind === 'activation_review' ? `review/${r.review_id}` : `${r.decision_id}/${r.round}`);

type Notice = { decisionId: string; ok: boolean; text: string };

/** Why a round that was in the list is gone, read from the decision itself. */
async function whyClosed(r: Round): Promise<string> {
  const res = await client.GET('/v1/decisions/{id}', { params: { path: { id: r.decision_id }, query: { wait: 0 } } });
  if (!res.data) return 'round closed elsewhere; an answer now would not count';
  const d = res.data;
  if (d.status === 'final') return `closed elsewhere: the run is final, ${d.decision}${d.reason_code ? ` (${d.reason_code.replace(/_/g, ' ')})` : ''}: ${d.reason}; an answer now would not count`;
  return `round ${r.round} moved on elsewhere (answered by its quorum, escalated to other groups, or superseded); an answer to it now would not count`;
}

/** How often the inbox reads /v1/approvals: often while the stream is not open, rarely (a safety net) while it is. */
export const POLL_MS = 3000;
const LIVE_POLL_MS = 60_000;

/** The inbox's update mode: the approvals stream while it is open (each event refreshes), polling otherwise. */
function useApprovalStream(): StreamMode {
  const qc = useQueryClient();
  const [mode, setMode] = useState<StreamMode>('polling');
  useEffect(() => watchApprovalStream(browserStreamDeps, {
    // A round event refreshes at once (a read already under way may predate the change); the stream's opening
    // refreshes only when no read is under way (the page's first read is, at load).
    onChange: (event) => { void qc.invalidateQueries({ queryKey: ['approvals'] }, { cancelRefetch: event !== null }); },
    onMode: setMode,
  }), [qc]);
  return mode;
}

/**
 * Rounds waiting for my answer, refreshed when the approvals stream says a round changed (or polled every few
 * seconds without it): a round closed elsewhere (another approver, Slack, email, the deadline) leaves the
 * list, and a notice says why.
 */
export function Inbox() {
  const mode = useApprovalStream();
  const approvals = useQuery({ queryKey: ['approvals'], queryFn: loadApprovals, refetchInterval: mode === 'live' ? LIVE_POLL_MS : POLL_MS });
  const [notices, setNotices] = useState<Notice[]>([]);
  const notify = (n: Notice) => setNotices((all) => [n, ...all].slice(0, 5));
  const shown = useRef<Map<string, Item> | null>(null);
  const answered = useRef(new Set<string>());
  useEffect(() => {
    const items = approvals.data?.items;
    if (!items) return;
    const now = new Map(items.map((r) => [keyOf(r), r]));
    // Only rounds this page showed and that left without my answer; the first load explains nothing.
    for (const [k, r] of shown.current ?? []) {
      if (now.has(k) || answered.current.has(k) || items.length >= INBOX_PAGE || r.kind === 'activation_review') continue;
      void whyClosed(r).then((text) => notify({ decisionId: r.decision_id, ok: false, text }));
    }
    shown.current = now;
  }, [approvals.data]);
  const items = approvals.data?.items ?? [];
  return (
    <section aria-labelledby="inbox-title">
      <h1 id="inbox-title">Approvals waiting for you</h1>
      <p className="hint" aria-live="polite" data-testid="inbox-status" data-mode={mode}>
        {approvals.data ? `${items.length}${items.length >= INBOX_PAGE ? '+' : ''} open, soonest deadline first · ${mode === 'live' ? 'live updates' : `updates every ${POLL_MS / 1000} s`}` : 'Loading…'}
      </p>
      <ErrorBox error={approvals.error} />
      <div aria-live="polite">
        {notices.map((n, i) => (
          <p key={i} role={n.ok ? 'status' : 'alert'} className={n.ok ? 'ok notice' : 'error notice'}>{n.decisionId}: {n.text}</p>
        ))}
      </div>
      {approvals.data && items.length === 0 && <p className="empty">Nothing waits for your answer.</p>}
      <ul className="cards">
        {items.map((r) => (r.kind === 'activation_review'
          ? <ReviewCard key={keyOf(r)} review={r} notify={notify} />
          : <RoundCard key={keyOf(r)} round={r} notify={notify} onAnswered={() => answered.current.add(keyOf(r))} />))}
      </ul>
    </section>
  );
}

const json = (v: unknown) => JSON.stringify(v, null, 2);

function until(deadline: string): string {
  const ms = new Date(deadline).getTime() - Date.now();
  if (ms <= 0) return 'past';
  const m = Math.round(ms / 60_000);
  return m < 90 ? `in ${m} min` : `in ${Math.round(m / 60)} h`;
}

type AnswerBody = { verdict: 'approve' | 'reject'; edited_args?: Record<string, unknown> };

function RoundCard({ round: r, notify, onAnswered }: { round: Round; notify: (n: Notice) => void; onAnswered: () => void }) {
  const qc = useQueryClient();
  const [comment, setComment] = useState('');
  const [busy, setBusy] = useState(false);
  const [editing, setEditing] = useState(false);
  const [editText, setEditText] = useState('');
  const [editRefused, setEditRefused] = useState<string | null>(null);
  const send = async ({ verdict, edited_args }: AnswerBody) => unwrap(await client.POST('/v1/decisions/{id}/approvals', {
    params: { path: { id: r.decision_id } },
    body: { verdict, round: r.round, args_digest: r.args_digest, channel: 'dashboard', ...(comment ? { comment } : {}), ...(edited_args ? { edited_args } : {}) },
  }));
  const answer = async (body: AnswerBody) => {
    setBusy(true);
    try {
      const res = await send(body);
      onAnswered();
      notify({ decisionId: r.decision_id, ok: true, text: `your ${body.verdict}${body.edited_args ? ' of the edited arguments' : ''} counted: round ${res.round} is ${res.round_status}` });
    } catch (err) {
      onAnswered();
      notify({ decisionId: r.decision_id, ok: false, text: `your answer did not count: ${err instanceof ApiError ? err.message : String(err)}` });
    } finally {
      await qc.invalidateQueries({ queryKey: ['approvals'] });
      setBusy(false);
    }
  };
  // An edit the server refuses (looser than what was asked, forbidden by the rule, other edited arguments
  // already approved) stays on the card with its reason, so the approver can change it or answer otherwise.
  const approveEdited = async (args: Record<string, unknown>) => {
    setBusy(true);
    setEditRefused(null);
    try {
      const res = await send({ verdict: 'approve', edited_args: args });
      onAnswered();
      setEditing(false);
      notify({ decisionId: r.decision_id, ok: true, text: `your approve of the edited arguments counted: round ${res.round} is ${res.round_status}` });
      await qc.invalidateQueries({ queryKey: ['approvals'] });
    } catch (err) {
      setEditRefused(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  const openEdit = () => {
    setEditText(json(r.edited_args ?? (r.args && typeof r.args === 'object' ? r.args : {})));
    setEditRefused(null);
    setEditing(true);
  };
  const parsed = editing ? parseEditedArgs(editText) : null;
  const constraints = Object.keys(r.constraints).length ? json(r.constraints) : null;
  // Decision rounds and overrides are answered through the run; any other kind the API lists is shown, not answered here.
  const answeredHere = r.kind === 'approval' || r.kind === 'override';
  const titleId = `round-${r.decision_id}-${r.round}`;
  const id = `${r.decision_id}-${r.round}`;
  const checklist = r.checklist ?? [];
  return (
    <li className="card" data-decision={r.decision_id} aria-labelledby={titleId}>
      <h2 id={titleId}>
        <span className="tool">{r.tool}{r.operation ? ` · ${r.operation}` : ''}</span>
        <span className="badge">{r.kind === 'approval' ? `round ${r.round}` : r.kind}</span>
      </h2>
      {checklist.length > 0 && (
        <section className="checklist" data-testid="checklist" aria-labelledby={`checklist-${id}`}>
          <h3 id={`checklist-${id}`}>Checklist: check each before you approve</h3>
          <ul>
            {checklist.map((j) => (
              <li key={`${j.policy_id}/${j.version}/${j.rule}`}>
                <span className="judgment">{j.text}</span>{' '}
                <span className="hint">(rule {j.rule}, {j.policy_id} v{j.version})</span>
              </li>
            ))}
          </ul>
        </section>
      )}
      <dl className="facts">
        <dt>Agent</dt><dd>{r.agent_id}</dd>
        <dt>Reason</dt><dd>{r.reason}</dd>
        <dt>Rule</dt><dd>{r.matched_rule ?? '—'}</dd>
        <dt>Policy</dt><dd>{r.policies.length ? r.policies.map((p) => `${p.policy_id} v${p.version}`).join(', ') : '—'}</dd>
        <dt>Arguments</dt><dd><pre className="mono args">{r.args === null || r.args === undefined ? 'none' : json(r.args)}</pre></dd>
        {r.edited_args && (
          <>
            <dt>Edited</dt>
            <dd data-testid="edited-args">
              being approved with arguments {r.edited_by ?? 'an approver'} edited; an approval now approves these:
              <pre className="mono args">{json(r.edited_args)}</pre>
            </dd>
          </>
        )}
        <dt>Constraints</dt><dd>{constraints ? <pre className="mono args">{constraints}</pre> : 'none'}</dd>
        <dt>Groups</dt><dd>{r.groups.join(', ')}{r.escalate_to.length ? ` (escalates to ${r.escalate_to.join(', ')})` : ''}</dd>
        <dt>Quorum</dt><dd>{r.approvals} of {r.quorum} approvals</dd>
        <dt>Answered</dt>
        <dd data-testid="answers">
          {r.answers.length === 0 ? 'nobody yet' : (
            <ul className="answers">
              {r.answers.map((a) => <li key={`${a.approver_id}/${a.at}`}>{a.approver_id} {a.verdict === 'approve' ? 'approved' : 'rejected'} via {a.channel} at <time dateTime={a.at}>{new Date(a.at).toLocaleTimeString()}</time>{a.comment ? `: “${a.comment}”` : ''}</li>)}
            </ul>
          )}
        </dd>
        <dt>Deadline</dt><dd><time dateTime={r.deadline}>{new Date(r.deadline).toLocaleString()}</time> ({until(r.deadline)}; then {r.on_timeout})</dd>
        {r.justification && (<><dt>Justification</dt><dd>{r.justification}</dd></>)}
        <dt>History</dt>
        <dd data-testid="history">
          {r.history.length === 0 ? `no earlier ${r.tool} decisions of ${r.agent_id}` : (
            <ul className="answers">
              {r.history.map((h) => (
                <li key={h.decision_id}>
                  <time dateTime={h.asked_at}>{new Date(h.asked_at).toLocaleString()}</time> {h.operation ?? ''}{' '}
                  <span className={`verdict ${h.decision ?? ''}`}>{h.decision ?? 'pending'}</span>
                  {h.finalized_via ? ` via ${h.finalized_via}` : ''}{h.outcome ? `, ${h.outcome}` : ''}{' '}
                  <Link to={`/decisions/${h.decision_id}`}>run</Link>
                </li>
              ))}
            </ul>
          )}
        </dd>
        <dt>Bound to</dt><dd className="mono">{r.args_digest ?? 'no arguments'}</dd>
        <dt>Run</dt><dd><Link to={`/decisions/${r.decision_id}`}>{r.decision_id}</Link></dd>
      </dl>
      {answeredHere ? (
        <>
          <label htmlFor={`comment-${r.decision_id}`}>Comment</label>
          <textarea id={`comment-${r.decision_id}`} value={comment} maxLength={4000} onChange={(e) => setComment(e.target.value)} />
          <div className="actions">
            {r.edited_args
              ? <button type="button" className="approve" disabled={busy} onClick={() => void answer({ verdict: 'approve', edited_args: r.edited_args! })}>Approve</button>
              : <button type="button" className="approve" disabled={busy} onClick={() => void answer({ verdict: 'approve' })}>Approve</button>}
            <button type="button" className="reject" disabled={busy} onClick={() => void answer({ verdict: 'reject' })}>Reject</button>
            {r.edits_allowed && !editing && <button type="button" disabled={busy} onClick={openEdit}>Edit arguments…</button>}
          </div>
          {r.edits_allowed && editing && (
            <form
              className="edit"
              aria-label="Approve with edit"
              onSubmit={(e) => { e.preventDefault(); if (parsed?.ok) void approveEdited(parsed.args); }}
            >
              <label htmlFor={`edit-${id}`}>Edited arguments (JSON)</label>
              <p className="hint" id={`edit-hint-${id}`}>
                The agent gets these instead of the ones it asked for. They are evaluated against the run&apos;s own policy
                snapshot, and count only when no looser than what was asked.
              </p>
              <textarea
                id={`edit-${id}`}
                className="mono edit-args"
                value={editText}
                spellCheck={false}
                aria-describedby={`edit-hint-${id} edit-problem-${id}`}
                aria-invalid={parsed?.ok === false}
                onChange={(e) => { setEditText(e.target.value); setEditRefused(null); }}
              />
              <p id={`edit-problem-${id}`} className="error" role="alert" data-testid="edit-problem">
                {parsed && !parsed.ok ? parsed.message : editRefused ? `refused, not counted: ${editRefused}` : ''}
              </p>
              <div className="actions">
                <button type="submit" className="approve" disabled={busy || !parsed?.ok}>Approve edited arguments</button>
                <button type="button" disabled={busy} onClick={() => { setEditing(false); setEditRefused(null); }}>Cancel edit</button>
              </div>
            </form>
          )}
        </>
      ) : <p className="hint">A {String(r.kind)} round is answered on its own page, not through a run&apos;s approvals.</p>}
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
        body: { verdict, review_id: r.review_id, channel: 'dashboard', ...(comment ? { comment } : {}) },
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
