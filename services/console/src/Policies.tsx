import { useEffect, useState, type ChangeEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { LineCounter, parse, parseDocument, stringify } from 'yaml';
import { ApiError, client, unwrap } from './api.ts';
import { ErrorBox, Link } from './App.tsx';
import { useMe } from './session.ts';
import { can } from './roles.ts';
import { navigate } from './router.ts';
import { PolicyPanels, type Review, type ValidationReport } from './PolicyPanels.tsx';

/** A summary field as text, a dash when absent. */
export const show = (v: unknown, none = '—'): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : none);

/** The fields of a policy summary the pages read (GET /v1/policies, GET /v1/policies/{id}). */
export type PolicySummary = {
  id: string; name: string | null; domain: string | null; status: string; active_version: number | null; latest_version: number | null;
  scope: { level?: string; agent?: string };
  draft: { version: number; updated_at: string; cloned_from: number | null; imported: boolean; validation: unknown } | null;
  activation_review: Review | null;
};
type Interpretation = { index: number; text: string; interpreted: Record<string, unknown> };

export function Policies() {
  const me = useMe();
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ['policies'], queryFn: async () => unwrap(await client.GET('/v1/policies')) });
  const [imported, setImported] = useState<string | null>(null);
  const [failure, setFailure] = useState<unknown>(null);
  const importFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    e.target.value = '';
    if (!file) return;
    setFailure(null);
    setImported(null);
    try {
      const body = JSON.parse(await file.text()) as Record<string, unknown>;
      const res = unwrap(await client.POST('/v1/policies/import', { body }));
      setImported(show(res['id']));
      await qc.invalidateQueries({ queryKey: ['policies'] });
    } catch (err) {
      setFailure(err instanceof SyntaxError ? new Error(`${file.name} is not JSON: ${err.message}`) : err);
    }
  };
  const items = list.data?.items ?? [];
  return (
    <section aria-labelledby="policies-title">
      <h1 id="policies-title">Policies</h1>
      {can(me, 'writePolicies') && (
        <div className="actions">
          <Link to="/policies/new" className="button">New policy</Link>
          <label className="button" htmlFor="import-file">Import signed export…</label>
          <input id="import-file" className="visually-hidden" type="file" accept="application/json,.json" onChange={(e) => void importFile(e)} />
        </div>
      )}
      {imported && <p role="status" className="ok">Imported as a draft: <Link to={`/policies/${imported}`}>{imported}</Link></p>}
      <ErrorBox error={failure} />
      <ErrorBox error={list.error} />
      <div className="scroll">
        <table className="list">
          <thead><tr><th>Policy</th><th>Name</th><th>Status</th><th>Active version</th><th>Domain</th><th>Scope</th><th>Latest</th></tr></thead>
          <tbody>
            {items.map((p) => (
              <tr key={p.id}>
                <td><Link to={`/policies/${p.id}`}>{p.id}</Link></td>
                <td>{show(p.name, '')}</td>
                <td><span className={`status ${p.status}`}>{p.status}</span>{p.activation_review?.status === 'open' ? ' · review pending' : ''}</td>
                <td>{show(p.active_version)}</td>
                <td>{show(p.domain)}</td>
                <td>{p.scope.level ?? 'tenant'}{p.scope.agent ? ` (${p.scope.agent})` : ''}</td>
                <td>{show(p.latest_version)}{p.draft ? ` · draft v${p.draft.version}` : ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

type Located = { where: string; path: string; message: string };

/** The API's error paths (rules.0.decision) placed at their line and column in the text being edited. */
export function locate(text: string, errors: Array<{ path: string; message: string }>): Located[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  return errors.map((e) => {
    let where = '';
    const segments = e.path === '' ? [] : e.path.split('.').map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    for (let n = segments.length; n >= 0 && !where; n--) {
      const node = doc.getIn(segments.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      const start = node && typeof node === 'object' && 'range' in node ? node.range?.[0] : undefined;
      if (start !== undefined) {
        const pos = lines.linePos(start);
        where = `${pos.line}:${pos.col}`;
      }
    }
    return { where: where || (/(\d+:\d+)/.exec(e.message)?.[1] ?? ''), path: e.path, message: e.message };
  });
}

const STARTER = `apiVersion: countersign/v1
kind: Policy
metadata:
  id: my-policy
  name: My policy
rules:
  - name: deny-shell
    match:
      tool: shell_exec
    decision: DENY
`;

export function PolicyEditor({ id }: { id: string | null }) {
  const me = useMe();
  const qc = useQueryClient();
  const writer = can(me, 'writePolicies');
  const policy = useQuery({
    queryKey: ['policy', id],
    enabled: id !== null,
    queryFn: async () => unwrap(await client.GET('/v1/policies/{id}', { params: { path: { id: id! } } })),
  });
  const [text, setText] = useState(id === null ? STARTER : '');
  const [errors, setErrors] = useState<Located[]>([]);
  const [message, setMessage] = useState<string | null>(null);
  const [failure, setFailure] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [report, setReport] = useState<ValidationReport | null>(null);
  const [interpreted, setInterpreted] = useState<Interpretation[] | null>(null);
  useEffect(() => {
    const d = policy.data;
    if (!d) return;
    const doc = d.draft_document ?? d.active?.document;
    if (doc) setText(stringify(tidy(doc)));
  }, [policy.data]);

  const hasDraft = Boolean(policy.data?.draft);
  const refresh = async () => {
    await qc.invalidateQueries({ queryKey: ['policy', id] });
    await qc.invalidateQueries({ queryKey: ['policy-versions', id] });
    await qc.invalidateQueries({ queryKey: ['policies'] });
  };
  const run = async (what: string, fn: () => Promise<string | void>) => {
    setBusy(true);
    setErrors([]);
    setMessage(null);
    setFailure(null);
    try {
      setMessage((await fn()) ?? what);
      await refresh();
    } catch (err) {
      if (err instanceof ApiError && err.problem.errors?.length) setErrors(locate(text, err.problem.errors));
      setFailure(err);
    } finally {
      setBusy(false);
    }
  };
  const yamlBody = { body: text as unknown as Record<string, never>, bodySerializer: (b: unknown) => b as string, headers: { 'content-type': 'application/yaml' } };
  const save = () => run('Draft saved', async () => {
    const res = id === null
      ? unwrap(await client.POST('/v1/policies', yamlBody))
      : unwrap(await client.PUT('/v1/policies/{id}', { ...yamlBody, params: { path: { id } } }));
    setInterpreted((res['interpreted'] as Interpretation[] | undefined) ?? []);
    if (id === null) navigate(`/policies/${show(res['id'])}`);
  });
  const validate = () => run('Validated', async () => {
    const res = unwrap(await client.POST('/v1/policies/{id}/validate', { params: { path: { id: id! } } }));
    setReport(res);
    return `Validation: ${res.runs} recent runs replayed, ${res.changed} would change (${res.stricter} stricter, ${res.looser} looser)`;
  });
  const activate = () => run('Activated', async () => {
    const res = await client.POST('/v1/policies/{id}/activate', { params: { path: { id: id! } }, body: {} });
    const data = unwrap(res);
    if (res.response.status === 202) return `Activation of v${show(data['version'])} waits for a second admin's review (four-eyes); it applies once approved.`;
    return `Activated v${show(data['version'])}, signed with key ${show(data['signing_key_id'])}`;
  });
  const clone = () => run('Cloned into a new draft', async () => {
    unwrap(await client.POST('/v1/policies/{id}/clone', { params: { path: { id: id! } }, body: {} }));
  });
  const shownInterpretations = interpreted ?? policy.data?.interpreted ?? [];

  return (
    <section aria-labelledby="editor-title">
      <h1 id="editor-title">{id === null ? 'New policy' : `Policy ${id}`}</h1>
      {policy.data && (
        <p className="meta">
          Status: <strong data-testid="policy-status">{policy.data.status}</strong> · active version {show(policy.data.active_version)}
          {hasDraft ? ` · draft v${policy.data.draft!.version}` : ''} · scope {policy.data.scope.level ?? 'tenant'}{policy.data.domain ? ` · domain ${policy.data.domain}` : ''}
        </p>
      )}
      <ErrorBox error={policy.error} />
      <label htmlFor="policy-yaml">Policy (YAML)</label>
      <textarea id="policy-yaml" className="editor mono" spellCheck={false} value={text} readOnly={!writer || (id !== null && !hasDraft)} onChange={(e) => setText(e.target.value)} rows={24} />
      {errors.length > 0 && (
        <ul className="problems" aria-label="Errors">
          {errors.map((e, i) => <li key={i} className="error"><span className="where mono">{e.where ? `line ${e.where}` : ''}</span> {e.path && <span className="mono">{e.path}</span>}: {e.message}</li>)}
        </ul>
      )}
      {message && <p role="status" className="ok">{message}</p>}
      {failure !== null && errors.length === 0 && <ErrorBox error={failure} />}
      <div className="actions">
        {writer && (id === null || hasDraft) && <button type="button" disabled={busy} onClick={() => void save()}>Save draft</button>}
        {writer && id !== null && !hasDraft && policy.data && <button type="button" disabled={busy} onClick={() => void clone()}>Clone to edit</button>}
        {writer && id !== null && hasDraft && <button type="button" disabled={busy} onClick={() => void validate()}>Validate</button>}
        {writer && id !== null && hasDraft && <button type="button" disabled={busy} onClick={() => void activate()}>Activate</button>}
      </div>
      {shownInterpretations.length > 0 && (
        <section aria-labelledby="nl-title" className="panel">
          <h2 id="nl-title">Natural-language rules, as interpreted</h2>
          <ul className="interpreted">
            {shownInterpretations.map((i) => (
              <li key={i.index}><q>{i.text}</q> → <code className="mono">{JSON.stringify(i.interpreted)}</code></li>
            ))}
          </ul>
        </section>
      )}
      {report && <ValidationReportView report={report} />}
      {id !== null && policy.data && <PolicyPanels id={id} policy={policy.data} draftText={text} busy={busy} run={run} />}
      {id === null && <PolicyPanels id={null} policy={null} draftText={text} busy={busy} run={run} />}
    </section>
  );
}

/** The validation's replay of recent runs: totals, then rule by rule, then the decisions that would change. */
export function ValidationReportView({ report }: { report: ValidationReport }) {
  const rules = Object.entries(report.by_rule);
  return (
    <section aria-labelledby="validation-title" className="panel" data-testid="validation-report">
      <h2 id="validation-title">Recent runs replayed: {report.changed} of {report.runs} (last {report.window_days} days) would change</h2>
      <p>{report.stricter} stricter · {report.looser} looser · {report.unchanged} unchanged</p>
      {rules.length > 0 && (
        <div className="scroll">
          <table className="list" aria-label="Changes by rule">
            <thead><tr><th>Rule</th><th>Would change</th><th>Stricter</th><th>Looser</th><th>Unchanged</th></tr></thead>
            <tbody>
              {rules.map(([rule, b]) => <tr key={rule}><td className="mono">{rule}</td><td>{b.changed}</td><td>{b.stricter}</td><td>{b.looser}</td><td>{b.unchanged}</td></tr>)}
            </tbody>
          </table>
        </div>
      )}
      {report.examples.length > 0 && (
        <ul aria-label="Decisions that would change">
          {report.examples.map((e) => (
            <li key={e.decision_id}><Link to={`/decisions/${e.decision_id}`} className="mono">{e.decision_id.slice(0, 16)}…</Link>: {e.before} → <strong>{e.after}</strong> (rule {e.rule ?? 'default'})</li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** The draft in the editor as a document, for simulation; null when the text does not parse. */
export function draftDocument(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const DOCUMENT_ORDER = ['apiVersion', 'kind', 'metadata', 'scope', 'models', 'tools', 'rules'];
const METADATA_ORDER = ['id', 'name', 'domain', 'description'];
const RULE_ORDER = ['name', 'text', 'on', 'match', 'condition', 'decision', 'reason', 'constraints', 'approval'];

/** Keys in the order people write them (stored documents come back with their keys sorted by the database). */
function ordered(obj: Record<string, unknown>, order: string[]): Record<string, unknown> {
  const rank = (k: string) => (order.includes(k) ? order.indexOf(k) : order.length);
  return Object.fromEntries(Object.entries(obj).sort(([a], [b]) => rank(a) - rank(b)));
}

function tidy(doc: Record<string, unknown>): Record<string, unknown> {
  const out = ordered(doc, DOCUMENT_ORDER);
  const meta = out['metadata'];
  if (meta && typeof meta === 'object' && !Array.isArray(meta)) out['metadata'] = ordered(meta as Record<string, unknown>, METADATA_ORDER);
  if (Array.isArray(out['rules'])) out['rules'] = (out['rules'] as unknown[]).map((r) => (r && typeof r === 'object' && !Array.isArray(r) ? ordered(r as Record<string, unknown>, RULE_ORDER) : r));
  return out;
}
