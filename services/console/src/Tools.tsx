import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { client, unwrap } from './api.ts';
import { ErrorBox } from './App.tsx';
import { useMe } from './session.ts';
import { can } from './roles.ts';

/** The tenant's tool catalog: its sources and every tool/operation with the risk tags it adds to requests. */
export function Tools() {
  const me = useMe();
  const qc = useQueryClient();
  const catalog = useQuery({ queryKey: ['catalog'], queryFn: async () => unwrap(await client.GET('/v1/tools/catalog')) });
  const [filter, setFilter] = useState('');
  const [failure, setFailure] = useState<unknown>(null);
  const remove = async (source: string) => {
    setFailure(null);
    try {
      unwrap(await client.DELETE('/v1/tools/catalog/{source}', { params: { path: { source } } }));
      await qc.invalidateQueries({ queryKey: ['catalog'] });
    } catch (err) {
      setFailure(err);
    }
  };
  const entries = (catalog.data?.entries ?? []).filter((e) => !filter || JSON.stringify(e).toLowerCase().includes(filter.toLowerCase()));
  return (
    <section aria-labelledby="tools-title">
      <h1 id="tools-title">Tool catalog</h1>
      <ErrorBox error={catalog.error} />
      <ErrorBox error={failure} />
      {catalog.data && <p className="meta">Version {catalog.data.version} · <span className="mono">{catalog.data.hash.slice(0, 19)}…</span> · {catalog.data.sources.length} sources · {catalog.data.entries.length} entries</p>}
      {catalog.data?.sources.length === 0 && <p className="hint">Nothing registered: register an OpenAPI document or an MCP tools/list result with <code>countersign tools register</code> or POST /v1/tools/catalog.</p>}
      {(catalog.data?.sources.length ?? 0) > 0 && (
        <div className="scroll">
          <table className="list" aria-label="Sources">
            <thead><tr><th>Source</th><th>Format</th><th>Entries</th><th>Registered</th>{can(me, 'manageCatalog') && <th>Actions</th>}</tr></thead>
            <tbody>
              {catalog.data?.sources.map((s) => (
                <tr key={s.source}>
                  <td className="mono">{s.source}</td><td>{s.format}</td><td>{s.entries}</td>
                  <td>{s.registered_by ?? '—'}{s.registered_at ? ` · ${new Date(s.registered_at).toLocaleString()}` : ''}</td>
                  {can(me, 'manageCatalog') && <td><button type="button" onClick={() => void remove(s.source)} aria-label={`Remove source ${s.source}`}>Remove</button></td>}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div className="filters">
        <label htmlFor="tool-filter">Filter</label>
        <input id="tool-filter" value={filter} maxLength={200} onChange={(e) => setFilter(e.target.value)} />
      </div>
      <div className="scroll">
        <table className="list" aria-label="Tools">
          <thead><tr><th>Tool</th><th>Operation</th><th>Risk tags</th><th>Source</th></tr></thead>
          <tbody>
            {entries.slice(0, 500).map((e) => (
              <tr key={`${e.source_id}/${e.tool}/${e.operation ?? ''}`}><td className="mono">{e.tool}</td><td>{e.operation ?? 'every operation'}</td><td>{e.risk_tags.join(', ')}</td><td className="mono">{e.source_id}</td></tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
