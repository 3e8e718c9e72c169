import { CountersignApiError } from '../sdk/errors.ts';
import { Transport } from '../sdk/transport.ts';
import type { Logger } from './governed-call.ts';
import type { Upstream } from './upstreams.ts';

/** The catalog source an upstream registers as: one per upstream, replaced whenever its tools change. */
export const catalogSourceFor = (upstream: string) => `mcp.${upstream}`;

/**
 * Registers an upstream's tools/list in the tenant's tool catalog (POST /v1/tools/catalog, format mcp, the
 * upstream as the tool and each MCP tool as an operation), so decisions on its calls carry the risk tags its
 * annotations imply. Only names and annotations are sent: they are all the catalog derives tags from, and a
 * changed description then registers nothing new. Registering needs the admin role, which an agent key should
 * not have: it uses COUNTERSIGN_CATALOG_API_KEY, and without it registers nothing and says so. A failure is
 * logged and never stops the gateway: every call is still governed by the policies.
 */
export async function registerUpstreamCatalog(api: { url: string; key: string | undefined; timeoutMs: number }, u: Upstream, log: Logger): Promise<'registered' | 'unchanged' | 'skipped' | 'failed'> {
  if (api.key === undefined) {
    log(`upstream ${u.name}: tool catalog not registered: set COUNTERSIGN_CATALOG_API_KEY (a key with the admin role) to register it`);
    return 'skipped';
  }
  if (u.tools.length === 0) return 'skipped';
  const document = { tools: u.tools.map((t) => ({ name: t.name, ...(t.annotations ? { annotations: t.annotations } : {}) })) };
  try {
    const res = await new Transport({ url: api.url, apiKey: api.key, timeoutMs: api.timeoutMs, attempts: 3 })
      .request<{ changed: boolean; version: number }>('POST', '/v1/tools/catalog', { format: 'mcp', tool: u.name, source: catalogSourceFor(u.name), document });
    return res.changed ? 'registered' : 'unchanged';
  } catch (err) {
    const detail = err instanceof CountersignApiError ? `${err.status} ${err.code}: ${err.problem.detail ?? ''}` : err instanceof Error ? err.message : String(err);
    log(`upstream ${u.name}: tool catalog not registered: ${detail}`);
    return 'failed';
  }
}
