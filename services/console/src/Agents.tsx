import { useState, type FormEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, client, unwrap } from './api.ts';
import { ErrorBox, Link } from './App.tsx';
import { useMe } from './session.ts';
import { can } from './roles.ts';
import { navigate } from './router.ts';

/** The tenant's agents (from its members, for admins and auditors), or any agent id typed in. */
export function Agents() {
  const me = useMe();
  const listable = can(me, 'listMembers');
  const agents = useQuery({
    queryKey: ['agents'],
    enabled: listable,
    queryFn: async () => unwrap(await client.GET('/v1/principals', { params: { query: { kind: 'agent', limit: 200 } } })),
  });
  const [id, setId] = useState('');
  const open = (e: FormEvent) => {
    e.preventDefault();
    if (id.trim()) navigate(`/agents/${encodeURIComponent(id.trim())}`);
  };
  return (
    <section aria-labelledby="agents-title">
      <h1 id="agents-title">Agents</h1>
      <form className="filters" onSubmit={open}>
        <label htmlFor="agent-id">Agent id</label>
        <input id="agent-id" value={id} maxLength={200} onChange={(e) => setId(e.target.value)} />
        <button type="submit">Open</button>
      </form>
      <ErrorBox error={agents.error} />
      {listable && (
        <div className="scroll">
          <table className="list">
            <thead><tr><th>Agent</th><th>Principal</th><th>Acts for</th><th>State</th></tr></thead>
            <tbody>
              {agents.data?.items.map((a) => (
                <tr key={a.id}>
                  <td>{a.agent_id ? <Link to={`/agents/${encodeURIComponent(a.agent_id)}`}>{a.agent_id}</Link> : '—'}</td>
                  <td>{a.name} <span className="mono hint">{a.id}</span></td>
                  <td>{a.acts_for.join(', ') || '—'}</td>
                  <td>{a.disabled ? 'disabled' : 'active'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

const SAMPLE_MANIFEST = (id: string) => JSON.stringify({ agent: { id }, providers: ['openai'], models: [{ provider: 'openai', model: 'gpt-4o' }], tools: ['payment_tool'] }, null, 2);

type Violation = { kind: string; item: string; policy_id: string; version: number; rule: string; reason: string };

/** One agent: its bound policy, a manifest check against the active policies, and its recent decisions. */
export function Agent({ id }: { id: string }) {
  const me = useMe();
  const qc = useQueryClient();
  const binding = useQuery({ queryKey: ['binding', id], queryFn: async () => unwrap(await client.GET('/v1/agents/{id}/binding', { params: { path: { id } } })) });
  const policies = useQuery({ queryKey: ['policies'], enabled: can(me, 'bindAgents'), queryFn: async () => unwrap(await client.GET('/v1/policies')) });
  const recent = useQuery({ queryKey: ['decisions', '', id], queryFn: async () => unwrap(await client.GET('/v1/decisions', { params: { query: { limit: 20, agent: id } } })) });
  const [bindTo, setBindTo] = useState('');
  const [manifest, setManifest] = useState(() => SAMPLE_MANIFEST(id));
  const [check, setCheck] = useState<{ ok: boolean; text: string; violations: Violation[] } | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [failure, setFailure] = useState<unknown>(null);
  const bound = binding.data?.['policy_id'];
  const act = async (fn: () => Promise<string>) => {
    setFailure(null);
    setMessage(null);
    try {
      setMessage(await fn());
      await qc.invalidateQueries({ queryKey: ['binding', id] });
    } catch (err) {
      setFailure(err);
    }
  };
  const bind = () => act(async () => {
    const res = await client.POST('/v1/agents/{id}/binding', { params: { path: { id } }, body: { policy_id: bindTo } });
    unwrap(res);
    return res.response.status === 202 ? `Binding ${bindTo} waits for a second admin's review` : `Bound ${bindTo}`;
  });
  const unbind = () => act(async () => {
    const res = await client.DELETE('/v1/agents/{id}/binding', { params: { path: { id } } });
    unwrap(res);
    return res.response.status === 202 ? 'Unbinding waits for a second admin\'s review' : 'Unbound';
  });
  const checkManifest = async () => {
    setCheck(null);
    setFailure(null);
    try {
      const body = JSON.parse(manifest) as never;
      const res = await client.POST('/v1/agents/{id}/manifest', { params: { path: { id } }, body });
      if (res.response.status === 409) {
        const problem = res.error as { detail?: string; violations?: Violation[] } | undefined;
        setCheck({ ok: false, text: problem?.detail ?? 'the manifest asks for what the active policies refuse', violations: problem?.violations ?? [] });
        return;
      }
      unwrap(res);
      setCheck({ ok: true, text: 'Every declared provider, model and tool is allowed by the active policies.', violations: [] });
    } catch (err) {
      setFailure(err instanceof SyntaxError ? new Error(`the manifest is not JSON: ${err.message}`) : err);
    }
  };
  const writer = can(me, 'bindAgents');
  return (
    <section aria-labelledby="agent-title">
      <h1 id="agent-title">Agent <span className="mono">{id}</span></h1>
      <section className="panel" aria-labelledby="binding-title">
        <h2 id="binding-title">Binding</h2>
        <ErrorBox error={binding.error} />
        {binding.data && <p data-testid="binding">{bound ? <>Bound to <Link to={`/policies/${bound}`}>{bound}</Link> v{typeof binding.data['version'] === 'number' ? binding.data['version'] : '—'}</> : 'No policy bound: the tenant and platform policies apply.'}</p>}
        {writer && (
          <div className="filters">
            <label htmlFor="bind-policy">Bind policy</label>
            <select id="bind-policy" value={bindTo} onChange={(e) => setBindTo(e.target.value)}>
              <option value="">choose…</option>
              {policies.data?.items.map((p) => <option key={String(p['id'])} value={String(p['id'])}>{String(p['id'])}</option>)}
            </select>
            <button type="button" disabled={!bindTo} onClick={() => void bind()}>Bind</button>
            {bound && <button type="button" onClick={() => void unbind()}>Unbind</button>}
          </div>
        )}
        {message && <p role="status" className="ok">{message}</p>}
        <ErrorBox error={failure} />
      </section>
      {can(me, 'checkManifests') && (
        <section className="panel" aria-labelledby="manifest-title">
          <h2 id="manifest-title">Manifest check</h2>
          <label htmlFor="manifest">Manifest (JSON)</label>
          <textarea id="manifest" className="mono" rows={8} spellCheck={false} value={manifest} onChange={(e) => setManifest(e.target.value)} />
          <div className="actions"><button type="button" onClick={() => void checkManifest()}>Check manifest</button></div>
          {check && (
            <div role="status" className={check.ok ? 'ok' : 'error'} data-testid="manifest-result">
              <p>{check.text}</p>
              {check.violations.length > 0 && <ul>{check.violations.map((v, i) => <li key={i}>{v.kind} {v.item}: {v.reason} ({v.policy_id} v{v.version}/{v.rule})</li>)}</ul>}
            </div>
          )}
        </section>
      )}
      <section className="panel" aria-labelledby="recent-title">
        <h2 id="recent-title">Recent decisions</h2>
        <ErrorBox error={recent.error instanceof ApiError ? recent.error : null} />
        {recent.data?.items.length === 0 && <p className="hint">None yet.</p>}
        <ul>
          {recent.data?.items.map((d) => (
            <li key={d.decision_id}><Link to={`/decisions/${d.decision_id}`} className="mono">{d.decision_id.slice(0, 16)}…</Link> {d.tool}{d.operation ? ` · ${d.operation}` : ''} <span className={`verdict ${d.decision ?? ''}`}>{d.decision ?? d.status}</span> <time dateTime={d.requested_at}>{new Date(d.requested_at).toLocaleString()}</time></li>
          ))}
        </ul>
      </section>
    </section>
  );
}
