import { useEffect, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { LineCounter, parseDocument, stringify } from 'yaml';
import { ApiError, client, unwrap } from './api.ts';
import { ErrorBox, Link } from './App.tsx';
import { hasRole, useMe } from './session.ts';
import { navigate } from './router.ts';

const WRITERS = ['author', 'admin'];

/** A summary field as text (the policy routes answer loosely typed records). */
const show = (v: unknown, none = '—'): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : none);

export function Policies() {
  const me = useMe();
  const list = useQuery({ queryKey: ['policies'], queryFn: async () => unwrap(await client.GET('/v1/policies')) });
  return (
    <section aria-labelledby="policies-title">
      <h1 id="policies-title">Policies</h1>
      {hasRole(me, ...WRITERS) && <p><Link to="/policies/new" className="button">New policy</Link></p>}
      <ErrorBox error={list.error} />
      <table className="list">
        <thead><tr><th>Policy</th><th>Name</th><th>Status</th><th>Active version</th><th>Latest</th><th>Scope</th></tr></thead>
        <tbody>
          {list.data?.items.map((p) => {
            const scope = (p['scope'] ?? {}) as { level?: string };
            return (
              <tr key={show(p['id'])}>
                <td><Link to={`/policies/${show(p['id'])}`}>{show(p['id'])}</Link></td>
                <td>{show(p['name'], '')}</td>
                <td>{String(p['status'])}</td>
                <td>{show(p['active_version'])}</td>
                <td>{show(p['latest_version'])}</td>
                <td>{scope.level ?? 'tenant'}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
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
  const writer = hasRole(me, ...WRITERS);
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
  useEffect(() => {
    const d = policy.data;
    if (!d) return;
    const doc = d['draft_document'] ?? (d['active'] as { document?: unknown } | null)?.document;
    if (doc) setText(stringify(doc));
  }, [policy.data]);

  const hasDraft = Boolean(policy.data?.['draft']);
  const run = async (what: string, fn: () => Promise<string | void>) => {
    setBusy(true);
    setErrors([]);
    setMessage(null);
    setFailure(null);
    try {
      setMessage((await fn()) ?? what);
      await qc.invalidateQueries({ queryKey: ['policy', id] });
      await qc.invalidateQueries({ queryKey: ['policies'] });
    } catch (err) {
      if (err instanceof ApiError && err.problem.errors?.length) setErrors(locate(text, err.problem.errors));
      setFailure(err);
    } finally {
      setBusy(false);
    }
  };
  const yamlBody = { body: text as unknown as Record<string, never>, bodySerializer: (b: unknown) => b as string, headers: { 'content-type': 'application/yaml' } };
  const save = () => run('Draft saved', async () => {
    if (id === null) {
      const res = unwrap(await client.POST('/v1/policies', yamlBody));
      navigate(`/policies/${show(res['id'])}`);
    } else {
      unwrap(await client.PUT('/v1/policies/{id}', { ...yamlBody, params: { path: { id } } }));
    }
  });
  const validate = () => run('Validated against recent runs', async () => {
    const res = unwrap(await client.POST('/v1/policies/{id}/validate', { params: { path: { id: id! } } }));
    return `Validation: ${JSON.stringify(res['summary'] ?? res).slice(0, 400)}`;
  });
  const activate = () => run('Activated', async () => {
    const res = await client.POST('/v1/policies/{id}/activate', { params: { path: { id: id! } }, body: {} });
    const data = unwrap(res);
    if (res.response.status === 202) throw new Error(`activation waits for a second admin's review (${show(data['status'])})`);
  });
  const clone = () => run('Cloned into a new draft', async () => {
    unwrap(await client.POST('/v1/policies/{id}/clone', { params: { path: { id: id! } }, body: {} }));
  });

  return (
    <section aria-labelledby="editor-title">
      <h1 id="editor-title">{id === null ? 'New policy' : `Policy ${id}`}</h1>
      {policy.data && <p className="meta">Status: <strong data-testid="policy-status">{show(policy.data['status'])}</strong> · active version {show(policy.data['active_version'])}{hasDraft ? ` · draft v${String((policy.data['draft'] as { version: number }).version)}` : ''}</p>}
      <ErrorBox error={policy.error} />
      <label htmlFor="policy-yaml">Policy (YAML)</label>
      <textarea id="policy-yaml" className="editor mono" spellCheck={false} value={text} readOnly={!writer} onChange={(e) => setText(e.target.value)} rows={24} />
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
    </section>
  );
}
