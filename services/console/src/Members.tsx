import { useState, type FormEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { client, unwrap } from './api.ts';
import { ErrorBox } from './App.tsx';
import { useMe } from './session.ts';

const ROLES = ['approver', 'author', 'admin', 'auditor', 'agent'] as const;
type Role = (typeof ROLES)[number];
const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);

/** Members and their keys (admins): add a member (its key shown once), disable or enable one, revoke a key. */
export function Members() {
  const me = useMe();
  const qc = useQueryClient();
  const members = useQuery({ queryKey: ['members'], queryFn: async () => unwrap(await client.GET('/v1/principals', { params: { query: { limit: 200 } } })) });
  const keys = useQuery({ queryKey: ['keys'], queryFn: async () => unwrap(await client.GET('/v1/api-keys', { params: { query: { limit: 200 } } })) });
  const [name, setName] = useState('');
  const [kind, setKind] = useState<'person' | 'agent'>('person');
  const [roles, setRoles] = useState<Role[]>(['approver']);
  const [groups, setGroups] = useState('');
  const [agentId, setAgentId] = useState('');
  const [created, setCreated] = useState<{ name: string; key: string } | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [failure, setFailure] = useState<unknown>(null);
  const act = async (fn: () => Promise<string | void>) => {
    setFailure(null);
    setMessage(null);
    try {
      const m = await fn();
      if (m) setMessage(m);
      await qc.invalidateQueries({ queryKey: ['members'] });
      await qc.invalidateQueries({ queryKey: ['keys'] });
    } catch (err) {
      setFailure(err);
    }
  };
  const add = (e: FormEvent) => {
    e.preventDefault();
    void act(async () => {
      setCreated(null);
      const res = unwrap(await client.POST('/v1/principals', { body: { name, kind, roles, groups: list(groups), key_name: `${name} (console)`, acts_for: [], ...(kind === 'agent' && agentId ? { agent_id: agentId } : {}) } }));
      setCreated({ name, key: res.api_key });
      setName('');
    });
  };
  const toggle = (id: string, disabled: boolean) => act(async () => {
    unwrap(await client.PATCH('/v1/principals/{id}', { params: { path: { id } }, body: { disabled } }));
    return disabled ? `Disabled ${id}: its keys and sessions stop working` : `Enabled ${id}`;
  });
  const revoke = (id: string) => act(async () => {
    unwrap(await client.DELETE('/v1/api-keys/{id}', { params: { path: { id } } }));
    return `Revoked key ${id}`;
  });
  const nameOf = new Map(members.data?.items.map((m) => [m.id, m.name]) ?? []);
  return (
    <section aria-labelledby="members-title">
      <h1 id="members-title">Members and keys</h1>
      <ErrorBox error={members.error ?? keys.error} />
      {message && <p role="status" className="ok">{message}</p>}
      <ErrorBox error={failure} />
      <form className="panel grid-form" onSubmit={add} aria-labelledby="add-title">
        <h2 id="add-title">Add a member</h2>
        <label htmlFor="m-name">Name</label>
        <input id="m-name" value={name} required maxLength={200} onChange={(e) => setName(e.target.value)} />
        <label htmlFor="m-kind">Kind</label>
        <select id="m-kind" value={kind} onChange={(e) => setKind(e.target.value as 'person' | 'agent')}><option value="person">person</option><option value="agent">agent</option></select>
        <fieldset>
          <legend>Roles</legend>
          {ROLES.map((r) => (
            <label key={r} className="inline"><input type="checkbox" checked={roles.includes(r)} onChange={(e) => setRoles((all) => (e.target.checked ? [...all, r] : all.filter((x) => x !== r)))} /> {r}</label>
          ))}
        </fieldset>
        <label htmlFor="m-groups">Groups (comma-separated)</label>
        <input id="m-groups" value={groups} onChange={(e) => setGroups(e.target.value)} />
        {kind === 'agent' && (<><label htmlFor="m-agent">Agent id</label><input id="m-agent" value={agentId} onChange={(e) => setAgentId(e.target.value)} /></>)}
        <button type="submit">Add member</button>
      </form>
      {created && (
        <div role="status" className="panel key-once">
          <p><strong>{created.name}</strong>'s API key, shown once (copy it now; only its hash is kept):</p>
          <input aria-label="New API key" className="mono" readOnly value={created.key} onFocus={(e) => e.target.select()} />
        </div>
      )}
      <div className="scroll">
        <table className="list" aria-label="Members">
          <thead><tr><th>Name</th><th>Kind</th><th>Roles</th><th>Groups</th><th>State</th><th>Actions</th></tr></thead>
          <tbody>
            {members.data?.items.map((m) => (
              <tr key={m.id}>
                <td>{m.name} <span className="mono hint">{m.id}</span></td>
                <td>{m.kind}{m.agent_id ? ` (${m.agent_id})` : ''}</td>
                <td>{m.roles.join(', ')}</td>
                <td>{m.groups.join(', ') || '—'}</td>
                <td>{m.disabled ? 'disabled' : 'active'}</td>
                <td>{m.id !== me.id && <button type="button" onClick={() => void toggle(m.id, !m.disabled)} aria-label={`${m.disabled ? 'Enable' : 'Disable'} ${m.name}`}>{m.disabled ? 'Enable' : 'Disable'}</button>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>API keys</h2>
      <div className="scroll">
        <table className="list" aria-label="API keys">
          <thead><tr><th>Prefix</th><th>Name</th><th>Member</th><th>Status</th><th>Expires</th><th>Actions</th></tr></thead>
          <tbody>
            {keys.data?.items.map((k) => (
              <tr key={k.id}>
                <td className="mono">{k.prefix}</td><td>{k.name}</td><td>{nameOf.get(k.principal_id) ?? k.principal_id}</td><td>{k.status}</td>
                <td>{k.expires_at ? new Date(k.expires_at).toLocaleString() : 'never'}</td>
                <td>{k.status === 'active' && <button type="button" onClick={() => void revoke(k.id)} aria-label={`Revoke key ${k.prefix}`}>Revoke</button>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
